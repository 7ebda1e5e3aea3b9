# PROBE: can this machine write to the sync dir? Leaves nothing.
# $1: the sync dir, $2: this machine's name.
cd -- "$1" 2>/dev/null || { echo "no such directory" >&2; exit 3; }
t=$(mktemp "./.ccsync-$2-XXXXXXXX") || exit 4
rm -f -- "$t"
