# STORE: unpacks the tar stream on stdin into a private temp dir, then
# moves each object into place, never through a link: `size mtime
# ./dir/file` on stdout for each one stored, a skip line on stderr for each
# one refused. $1: the sync dir, $2: this machine's name (empty when
# unknown), then the objects as dir/file.
cd -- "$1" 2>/dev/null || { echo "no such directory" >&2; exit 3; }
owner=$2
shift 2
umask 077
top=$(pwd -P) || exit 4
case $top in */) ;; *) top=$top/ ;; esac
if stat -c %s . >/dev/null 2>&1; then
  stamp() { stat -c '%s %Y' -- "$1"; }
else
  stamp() { stat -f '%z %m' -- "$1"; }
fi
sweep "$owner"
t=$(mktemp -d "$top.ccsync-${owner:-unknown}@$$-XXXXXXXX") || exit 4
trap 'rm -rf -- "$t"' EXIT
trap 'exit 1' HUP INT TERM PIPE
# A link planted where an object goes, after it was looked at, must be
# replaced rather than moved into: GNU mv -T, BSD mv -h.
: >"$t/.a" || exit 4
if mv -T -- "$t/.a" "$t/.b" 2>/dev/null; then nofollow=-T
elif mv -h -- "$t/.a" "$t/.b" 2>/dev/null; then nofollow=-h
else nofollow=
fi
tar -xf - -C "$t" || exit 4
n=$#
while [ "$n" -gt 0 ]; do
  f=$1
  d=${f%/*}
  shift
  n=$((n - 1))
  if [ -L "$d" ]; then skip "$f" link "$d"; continue; fi
  if [ ! -d "$d" ]; then
    if [ -e "$d" ]; then skip "$f" not-folder "$d"; continue; fi
    # One component: mkdir neither follows a link nor makes parents.
    why=$(mkdir -- "$d" 2>&1) || [ -d "$d" ] || { skip "$f" error "$why"; continue; }
  fi
  # Inside the folder itself, checked to be the real one, rather than
  # through its name: a link swapped in for it from now on is not used.
  (
    cd -P -- "$d" 2>/dev/null || { skip "$f" error "$(cd -- "$d" 2>&1 || :)"; exit 1; }
    [ "$(pwd -P)" = "$top$d" ] || { skip "$f" link "$d"; exit 1; }
    b=${f##*/}
    if [ -L "$b" ]; then skip "$f" link "$f"; exit 1; fi
    if [ -d "$b" ]; then skip "$f" not-file "$f"; exit 1; fi
    # shellcheck disable=SC2086 # $nofollow is one option or none
    why=$(mv -f $nofollow -- "$t/$f" "$b" 2>&1) || { skip "$f" error "$why"; exit 1; }
    if st=$(stamp "$b" 2>&1); then printf '%s ./%s\n' "$st" "$f"; else skip "$f" error "$st"; fi
  )
done
exit 0
