# FETCH: one tar stream on stdout of each named object that is a regular,
# readable file within the size limit, reached through no link; a skip line
# on stderr for each other one. $1: the sync dir, $2: the size limit in
# bytes, then the objects as ./dir/file.
cd -- "$1" 2>/dev/null || { echo "no such directory" >&2; exit 3; }
max=$2
shift 2
if stat -c %s . >/dev/null 2>&1; then
  size() { stat -c %s -- "$1"; }
else
  size() { stat -f %z -- "$1"; }
fi
# tar would read through a linked folder, so each object is looked at
# first; the good ones go back into "$@" for a single tar. (A link swapped
# in between this look and tar's open is still read: sh cannot hand tar an
# open folder. Writes are pinned that way, see store.sh; a read through a
# link can only deliver what the client then fails to decode.)
n=$#
while [ "$n" -gt 0 ]; do
  f=$1
  d=${f%/*}
  shift
  n=$((n - 1))
  if [ -L "$d" ]; then skip "$f" link "$d"
  elif [ ! -d "$d" ]; then skip "$f" missing "$d"
  elif [ -L "$f" ]; then skip "$f" link "$f"
  elif [ ! -e "$f" ]; then skip "$f" missing "$f"
  elif [ ! -f "$f" ]; then skip "$f" not-file "$f"
  elif s=$(size "$f") && [ "$s" -gt "$max" ]; then skip "$f" too-large "$s"
  elif ! why=$( (: <"$f") 2>&1); then skip "$f" unreadable "$why"
  else set -- "$@" "$f"
  fi
done
[ "$#" -gt 0 ] || exit 0
exec tar -cf - "$@"
