# SWEEP: removes this machine's leftover temp dirs at the sync dir's top
# (a killed store left them; this machine runs one ccsync at a time), and
# other machines' once an hour old. $1: the sync dir, $2: this machine's
# name. find without -L never enters a link; rm -rf on a link removes the
# link. Exactly eight characters after the name: `laptop` never takes
# `laptop-2`'s.
cd -- "$1" 2>/dev/null || { echo "no such directory" >&2; exit 3; }
if [ -n "$2" ]; then
  find . -mindepth 1 -maxdepth 1 -name ".ccsync-$2-????????" -exec rm -rf -- {} + 2>/dev/null
fi
find . -mindepth 1 -maxdepth 1 -name '.ccsync-*' -mmin +60 -exec rm -rf -- {} + 2>/dev/null
exit 0
