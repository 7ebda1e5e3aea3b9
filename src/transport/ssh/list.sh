# LIST: every object, as `size mtime ./dir/file` on stdout; every link one
# or two levels down, as a skip line on stderr. $1: the sync dir.
cd -- "$1" 2>/dev/null || { echo "no such directory" >&2; exit 3; }
# find is never given -L: a linked folder is named here, never entered.
find . -mindepth 1 -maxdepth 2 ! -path './.*' ! -name '.*' -type l \
  -exec printf 'ccsync-skip\t%s\tlink\t\n' {} + >&2
if stat -c %s . >/dev/null 2>&1; then
  find . -mindepth 2 -maxdepth 2 ! -path './.*' ! -name '.*' -type f \
    -exec stat -c '%s %Y %n' {} +
else
  find . -mindepth 2 -maxdepth 2 ! -path './.*' ! -name '.*' -type f \
    -exec stat -f '%z %m %N' {} +
fi
