"""``sealgate completion bash|zsh|fish``: shell completion generated from the parser itself.

The scripts are data (subcommands, options, choices per command path) read
off the argparse tree, so a new option completes without anyone editing a
script. zsh uses the bash function through ``bashcompinit``, as many tools do.
"""

from __future__ import annotations

import argparse
import shlex

from gate._cli_help import Node, walk

SHELLS = ("bash", "zsh", "fish")


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script for ``shell`` (one of :data:`SHELLS`)."""
    nodes = list(walk(parser))
    if shell == "fish":
        return _fish(nodes)
    text = _bash(nodes)
    if shell == "zsh":
        return "#compdef sealgate\nautoload -U +X bashcompinit && bashcompinit\n" + text
    return text


def _subcommands(parser: argparse.ArgumentParser) -> list[str]:
    """Words that may come next: subcommand names, or a positional's choices (``bash``)."""
    words = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            words += list(action.choices)
        elif not action.option_strings and action.choices:
            words += [str(c) for c in action.choices]
    return words


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and a.help != argparse.SUPPRESS]


def _bash(nodes: list[Node]) -> str:
    subs, opts, choices = [], [], []
    for path, parser in nodes:
        names = _subcommands(parser)
        if names:
            subs.append(f"    {shlex.quote(path)}) echo {shlex.quote(' '.join(names))} ;;")
        flags = [o for a in _options(parser) for o in a.option_strings]
        opts.append(f"    {shlex.quote(path)}) echo {shlex.quote(' '.join(flags))} ;;")
        for action in _options(parser):
            if action.choices:
                values = " ".join(str(c) for c in action.choices)
                for flag in action.option_strings:
                    key = shlex.quote(f"{path}|{flag}")
                    choices.append(f"    {key}) echo {shlex.quote(values)} ;;")
    return _BASH.format(subs="\n".join(subs), opts="\n".join(opts), choices="\n".join(choices))


_BASH = """\
# sealgate completion for bash: eval "$(sealgate completion bash)"
_sealgate_subs() {{
  case "$1" in
{subs}
  esac
}}
_sealgate_opts() {{
  case "$1" in
{opts}
  esac
}}
_sealgate_choices() {{
  case "$1|$2" in
{choices}
  esac
}}
_sealgate() {{
  [[ -n "${{ZSH_VERSION-}}" ]] && setopt localoptions ksharrays  # bash's 0-based arrays
  local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}" path="" w i
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="${{COMP_WORDS[i]}}"
    case " $(_sealgate_subs "$path") " in *" $w "*) path="${{path:+$path }}$w" ;; esac
  done
  local values
  values="$(_sealgate_choices "$path" "$prev")"
  if [[ -n "$values" ]]; then
    COMPREPLY=($(compgen -W "$values" -- "$cur"))
  elif [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$(_sealgate_opts "$path")" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$(_sealgate_subs "$path")" -- "$cur"))
    [[ ${{#COMPREPLY[@]}} -eq 0 ]] && COMPREPLY=($(compgen -f -- "$cur"))
  fi
  return 0
}}
complete -o filenames -F _sealgate sealgate
"""


def _fish(nodes: list[Node]) -> str:
    lines = [
        "# sealgate completion for fish: sealgate completion fish | source",
        "function __sealgate_subs",
        '    switch "$argv[1]"',
    ]
    for path, parser in nodes:
        names = _subcommands(parser)
        if names:
            lines += [f"        case {_fq(path)}", f"            echo {' '.join(names)}"]
    lines += [
        "    end",
        "end",
        "function __sealgate_path",
        "    set -l path ''",
        "    for w in (commandline -opc)[2..-1]",
        "        if contains -- $w (string split ' ' (__sealgate_subs $path))",
        '            set path (string trim "$path $w")',
        "        end",
        "    end",
        '    test "$path" = "$argv[1]"',
        "end",
        "complete -c sealgate -f",
    ]
    for path, parser in nodes:
        when = f"-n {_fq('__sealgate_path ' + _fq(path))}"
        for name in _subcommands(parser):
            lines.append(f"complete -c sealgate {when} -a {_fq(name)}")
        free = [a for a in parser._actions if not a.option_strings and not a.choices]
        if not _subcommands(parser) and free:
            lines.append(f"complete -c sealgate {when} -F")  # IMAGE, PATH, FILE arguments
        for action in _options(parser):
            spec = []
            for flag in action.option_strings:
                if flag.startswith("--"):
                    spec.append(f"-l {_fq(flag[2:])}")
                else:
                    spec.append(f"-s {_fq(flag[1:])}")
            if action.nargs != 0 and action.choices:
                spec.append(f"-x -a {_fq(' '.join(str(c) for c in action.choices))}")
            elif action.nargs != 0:
                spec.append("-r -F")
            help_text = (action.help or "").split(";")[0].split("(")[0].strip()
            if help_text:
                spec.append(f"-d {_fq(help_text[:60])}")
            lines.append(f"complete -c sealgate {when} {' '.join(spec)}")
    return "\n".join(lines) + "\n"


def _fq(text: str) -> str:
    """A fish single-quoted string."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
