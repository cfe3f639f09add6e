/* doc: gpuscribe(1) and the bash completion, printed by the binary itself (`gpuscribe help
 * --man`, `gpuscribe help --bash-completion`; `make doc` writes them to build/), so both come
 * from the same settings table as `--help` (config.h) and cannot drift from it. */
#include "cli/cli.h"
#include "core/config.h"

#include <stdio.h>

#ifndef GS_VERSION
#define GS_VERSION "dev"
#endif
#ifndef GS_SHAREDIR
#define GS_SHAREDIR "/usr/share/gpuscribe"
#endif

/* the commands and their own flags (the settings' flags are valid on every command) */
#define DOC_COMMANDS "serve status transcribe worker vast help version"
#define DOC_VAST_COMMANDS "search boot list destroy"
#define DOC_STATUS_FLAGS "--json"
#define DOC_TRANSCRIBE_FLAGS "--format --language --word-timestamps -o --output --server --model"
#define DOC_WORKER_FLAGS "--listen --model --work-dir --max-queue --result-ttl-minutes"
#define DOC_VAST_FLAGS                                                                         \
    "--json --gpu-ram-min --max-price --min-reliability --min-cuda --min-disk --min-inet-down " \
    "--num-gpus --gpu-name --limit --interruptible --min-compute-cap --explain"

void cli_print_man(FILE *out)
{
    /* no date: the page is the same for every build of one version */
    fprintf(out,
            ".\\\" gpuscribe(1), printed by `gpuscribe help --man` from the settings table\n"
            ".TH GPUSCRIBE 1 \"\" \"gpuscribe %s\" \"User Commands\"\n"
            ".SH NAME\n"
            "gpuscribe \\- transcribe audio on rented GPUs (Vast.ai) or locally\n"
            ".SH SYNOPSIS\n"
            ".B gpuscribe serve\n[\\fIOPTIONS\\fR]\n.br\n"
            ".B gpuscribe status\n[\\fB\\-\\-json\\fR]\n.br\n"
            ".B gpuscribe transcribe\n\\fIFILE\\fR [\\fB\\-\\-format\\fR \\fIFMT\\fR] "
            "[\\fB\\-\\-language\\fR \\fICODE\\fR] [\\fB\\-o\\fR \\fIOUT\\fR] "
            "[\\fB\\-\\-server\\fR \\fIURL\\fR]\n.br\n"
            ".B gpuscribe vast\n\\fBsearch\\fR|\\fBboot\\fR \\fIOFFER_ID\\fR|\\fBlist\\fR|"
            "\\fBdestroy\\fR \\fIID\\fR [\\fIOPTIONS\\fR]\n.br\n"
            ".B gpuscribe worker\n[\\fB\\-\\-listen\\fR 127.0.0.1:\\fIPORT\\fR] [\\fIOPTIONS\\fR]\n.br\n"
            ".B gpuscribe\n\\fBhelp\\fR|\\fB\\-\\-help\\fR|\\fBversion\\fR\n"
            ".SH DESCRIPTION\n"
            "\\fBgpuscribe serve\\fR runs a web page and a REST API (default "
            "http://127.0.0.1:8000). It rents a Vast.ai GPU when asked, sends the audio there "
            "through an SSH tunnel, and destroys the GPU when it goes idle. With no GPU and no "
            "keys it still works: a CPU engine (pocketsphinx) transcribes locally.\n"
            ".SH COMMANDS\n"
            ".TP\n.B serve\nRun the web UI and the REST API (\\fBGET /openapi.json\\fR "
            "describes it).\n"
            ".TP\n.B status\nAsk the running server at HOST:PORT for its GPU status.\n"
            ".TP\n.B transcribe\nTranscribe an audio file here, or with \\fB\\-\\-server\\fR "
            "\\fIURL\\fR through a running server.\n"
            ".TP\n.B vast\nSearch, boot, list and destroy Vast.ai instances "
            "(\\fBgpuscribe vast \\-\\-help\\fR).\n"
            ".TP\n.B worker\nRun the worker API on loopback (what GPU instances run).\n"
            ".TP\n.B help\\fR, \\fBversion\nThis help; the version. \\fBgpuscribe "
            "\\fICOMMAND\\fB \\-\\-help\\fR shows a command's own options.\n"
            ".SH OPTIONS\n"
            "Every setting is a flag (\\fB\\-\\-data\\-dir\\fR \\fIDIR\\fR or "
            "\\fB\\-\\-port=\\fR\\fI9000\\fR) or a variable of the same name in the "
            "environment or the env file. Precedence, lowest first: the built-in default, the "
            "vast CLI's key file (VAST_API_KEY only), the env file (./.env, or "
            "\\fB\\-\\-env\\-file\\fR \\fIPATH\\fR), the environment, the flags. A bad value "
            "stops the program with a message naming the option.\n",
            GS_VERSION);
    config_print_man_options(out);
    fprintf(out,
            ".SH FILES\n"
            ".TP\n.I ./.env\nThe env file when no \\fB\\-\\-env\\-file\\fR is given (optional). "
            "gpuscribe rewrites it itself (VAST_INSTANCE_ID after a boot), atomically, keeping "
            "every other line; the directory must be writable for that.\n"
            ".TP\n.I /etc/gpuscribe/gpuscribe.env\nThe service's env file (mode 0600, owned "
            "by the gpuscribe user): its secrets and settings.\n"
            ".TP\n.I /var/lib/gpuscribe\nThe service's DATA_DIR: the SQLite store, uploads, "
            "transcripts, gpuscribe's SSH key.\n"
            ".TP\n.I %s\nThe web UI (web/), the worker, its source bundle and the setup script "
            "sent to GPU instances.\n"
            ".SH SEE ALSO\n"
            "\\fBsystemctl\\fR(1): the \\fBgpuscribe.service\\fR unit runs \\fBgpuscribe "
            "serve \\-\\-env\\-file /etc/gpuscribe/gpuscribe.env\\fR as the gpuscribe user.\n",
            GS_SHAREDIR);
}

void cli_print_bash_completion(FILE *out)
{
    fputs("# bash completion for gpuscribe, printed by `gpuscribe help --bash-completion`\n"
          "_gpuscribe() {\n"
          "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmd=\"\" sub=\"\" i w\n"
          "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
          "        w=${COMP_WORDS[i]}\n"
          "        [[ $w == -* ]] && continue\n"
          "        if [[ -z $cmd ]]; then cmd=$w; elif [[ $cmd == vast && -z $sub ]]; then sub=$w; fi\n"
          "    done\n"
          "    local settings=\"",
          out);
    config_print_flags(out); /* the settings' flags, from the table */
    fputs("\"\n"
          "    case $prev in\n"
          "        --env-file|-o|--output|--data-dir|--web-dir|--work-dir)\n"
          "            COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n"
          "        --engine) COMPREPLY=($(compgen -W \"auto whisper parakeet sphinx\" -- \"$cur\")); return ;;\n"
          "        --vad) COMPREPLY=($(compgen -W \"auto on off\" -- \"$cur\")); return ;;\n"
          "        --log-level) COMPREPLY=($(compgen -W \"error warn info debug\" -- \"$cur\")); return ;;\n"
          "        --format) COMPREPLY=($(compgen -W \"txt json verbose_json srt vtt\" -- \"$cur\")); return ;;\n"
          "    esac\n"
          "    if [[ -z $cmd ]]; then\n"
          "        COMPREPLY=($(compgen -W \"" DOC_COMMANDS " --help --version\" -- \"$cur\")); return\n"
          "    fi\n"
          "    local own=\"\"\n"
          "    case $cmd in\n"
          "        status) own=\"" DOC_STATUS_FLAGS "\" ;;\n"
          "        transcribe) own=\"" DOC_TRANSCRIBE_FLAGS "\" ;;\n"
          "        worker) own=\"" DOC_WORKER_FLAGS "\" ;;\n"
          "        vast) if [[ -z $sub && $cur != -* ]]; then\n"
          "                  COMPREPLY=($(compgen -W \"" DOC_VAST_COMMANDS "\" -- \"$cur\")); return\n"
          "              fi\n"
          "              own=\"" DOC_VAST_FLAGS "\" ;;\n"
          "        help|version) COMPREPLY=(); return ;;\n"
          "    esac\n"
          "    if [[ $cur == -* ]]; then\n"
          "        COMPREPLY=($(compgen -W \"$own $settings --help\" -- \"$cur\"))\n"
          "    elif [[ $cmd == transcribe ]]; then\n"
          "        COMPREPLY=($(compgen -f -- \"$cur\"))\n"
          "    fi\n"
          "}\n"
          "complete -F _gpuscribe gpuscribe\n",
          out);
}
