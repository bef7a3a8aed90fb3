#compdef guild
# zsh completion for guild: put it as _guild in a directory of $fpath, or source it after compinit.
# It asks guild itself for the words (urfave/cli's --generate-bash-completion).
_guild_zsh_autocomplete() {
  local -a opts
  local cur
  cur=${words[-1]}
  if [[ "$cur" == "-"* ]]; then
    opts=("${(@f)$(${words[@]:0:#words[@]-1} ${cur} --generate-bash-completion)}")
  else
    opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion)}")
  fi
  if [[ "${opts[1]}" != "" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}
compdef _guild_zsh_autocomplete guild
