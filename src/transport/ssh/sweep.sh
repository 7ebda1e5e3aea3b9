# SWEEP: removes this machine's leftover temp dirs at the sync dir's top,
# and other machines' once an hour old (see `sweep` in lib.sh). $1: the
# sync dir, $2: this machine's name.
cd -- "$1" 2>/dev/null || { echo "no such directory" >&2; exit 3; }
sweep "$2"
exit 0
