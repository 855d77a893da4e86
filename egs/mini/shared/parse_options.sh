#!/usr/bin/env bash
# Parse "--foo-bar value" (or "--foo-bar=value") command-line options into shell variables.
#
# Source it after the defaults block:  . shared/parse_options.sh
# Each option must name a variable the script already defines (dashes become underscores),
# so a typo is an error instead of a silently ignored setting. "--help" prints the defaults.
# Positional arguments that follow the options are left in "$@".

__po_script=${0##*/}

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      echo "usage: $__po_script [--option value ...]"
      echo "options (current values):"
      if [ -n "${help_vars:-}" ]; then
        for __po_var in $help_vars; do
          printf '  --%s %s\n' "${__po_var//_/-}" "${!__po_var}"
        done
      fi
      exit 0
      ;;
    --*=*)
      __po_name=${1%%=*}; __po_value=${1#*=}; shift
      ;;
    --*)
      __po_name=$1
      if [ $# -lt 2 ]; then
        echo "$__po_script: option $__po_name needs a value" >&2
        exit 1
      fi
      __po_value=$2; shift 2
      ;;
    *)
      break
      ;;
  esac
  __po_var=${__po_name#--}
  __po_var=${__po_var//-/_}
  if ! [[ $__po_var =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
    echo "$__po_script: bad option name $__po_name" >&2
    exit 1
  fi
  if [ -z "${!__po_var+set}" ]; then
    echo "$__po_script: unknown option $__po_name (no default '$__po_var' in the script; see --help)" >&2
    exit 1
  fi
  printf -v "$__po_var" '%s' "$__po_value"
done
unset __po_name __po_value __po_var
