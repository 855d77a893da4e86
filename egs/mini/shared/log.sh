# Recipe helpers shared by prepare.sh and run.sh (sourced, icefall style).
#   log MESSAGE     timestamped message naming the calling script, line and function
#   need FILE WHAT  stop with a clear message when an earlier stage's output is missing

log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%d %H:%M:%S') ($fname:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}

need() {
  if [ ! -e "$1" ]; then
    local fname=${BASH_SOURCE[1]##*/}
    echo -e "$(date '+%Y-%m-%d %H:%M:%S') ($fname:${BASH_LINENO[0]}) ERROR: $1 not found ($2); run the earlier stages first (see --stage)"
    exit 1
  fi
}
