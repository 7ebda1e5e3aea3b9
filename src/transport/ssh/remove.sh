# REMOVE: removes each named object that is a regular file reached through
# no link, printing `./dir/file` on stdout for each one gone (or already
# gone), a skip line on stderr for each one refused. $1: the sync dir,
# then the objects as dir/file.
cd -- "$1" 2>/dev/null || { echo "no such directory" >&2; exit 3; }
shift
top=$(pwd -P) || exit 4
case $top in */) ;; *) top=$top/ ;; esac
for f in "$@"; do
  d=${f%/*}
  if [ -L "$d" ]; then skip "$f" link "$d"; continue; fi
  if [ ! -e "$f" ] && [ ! -L "$f" ]; then printf './%s\n' "$f"; continue; fi
  # From inside the real folder, so a link swapped in for it is not used;
  # rm on a name never follows it.
  (
    cd -P -- "$d" 2>/dev/null || { skip "$f" error "$(cd -- "$d" 2>&1 || :)"; exit 1; }
    [ "$(pwd -P)" = "$top$d" ] || { skip "$f" link "$d"; exit 1; }
    b=${f##*/}
    if [ -L "$b" ]; then skip "$f" link "$f"; exit 1; fi
    if [ ! -f "$b" ]; then skip "$f" not-file "$f"; exit 1; fi
    why=$(rm -f -- "$b" 2>&1) || { skip "$f" error "$why"; exit 1; }
    printf './%s\n' "$f"
  )
done
exit 0
