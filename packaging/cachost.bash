# bash completion for cachost: commands, their subcommands, instance and app names.
_cachost() {
  local cur prev words cword
  _init_completion || return
  local cmds="help version run repl script test instance connectors sync status query act policy alerts alert identity console governance vault retention sandbox demo"
  local i cmd=""
  for ((i = 1; i < cword; i++)); do
    case ${words[i]} in --home|--log-level|--log-format|--trace-http) ((i++)) ;; -*) ;; *) cmd=${words[i]}; break ;; esac
  done
  if [[ -z $cmd ]]; then
    COMPREPLY=($(compgen -W "$cmds --home --log-level --log-format --trace-http --debug --help --version" -- "$cur"))
    return
  fi
  local instances
  instances() { cachost instance list --format csv 2>/dev/null | tail -n +2 | cut -d, -f1; }
  case $cmd in
    help) COMPREPLY=($(compgen -W "$cmds" -- "$cur")) ;;
    instance)
      if ((cword == i + 1)); then COMPREPLY=($(compgen -W "add list show edit rename enable disable connect test remove" -- "$cur"))
      elif [[ ${words[i+1]} == add ]]; then COMPREPLY=($(compgen -W "okta github box office365 azure" -- "$cur"))
      else COMPREPLY=($(compgen -W "$(instances)" -- "$cur")); fi ;;
    sync|status|act|retention) COMPREPLY=($(compgen -W "$(instances) --help" -- "$cur")) ;;
    connectors) COMPREPLY=($(compgen -W "okta github box office365 azure" -- "$cur")) ;;
    policy) COMPREPLY=($(compgen -W "list enable disable mode test" -- "$cur")) ;;
    governance) COMPREPLY=($(compgen -W "log retry undo pause resume status reconcile" -- "$cur")) ;;
    alert) COMPREPLY=($(compgen -W "show resolve" -- "$cur")) ;;
    vault) COMPREPLY=($(compgen -W "status rotate" -- "$cur")) ;;
    sandbox) COMPREPLY=($(compgen -W "okta github box microsoft --port --seed --size --events --rate-limit" -- "$cur")) ;;
    query|alerts) COMPREPLY=($(compgen -W "--format" -- "$cur")) ;;
    *) COMPREPLY=($(compgen -W "--help" -- "$cur")) ;;
  esac
}
complete -F _cachost cachost
