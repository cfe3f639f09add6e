/* cli: the client-side commands of the gpuscribe binary, one file each (transcribe, vast,
 * ...). Each entry point takes the command's own argv (argv[0] = the command name) and
 * returns the process exit status: 0 success, 1 failure, 2 usage error. main.c dispatches. */
#ifndef GS_CLI_H
#define GS_CLI_H

#include <stdio.h>

/* worker.c: `gpuscribe worker --listen 127.0.0.1:PORT [--engine E] [--model M]` */
int cli_worker(int argc, char **argv);
/* transcribe.c: `gpuscribe transcribe FILE [--format F] [--language L] [-o OUT] [--server URL]` */
int cli_transcribe(int argc, char **argv);
/* vast.c: `gpuscribe vast search|boot|list|destroy ...` against the Vast.ai API */
int cli_vast(int argc, char **argv);

/* diarize.c: `gpuscribe diarize FILE.wav [--num-speakers N] [--min-speakers N]
 * [--max-speakers N]`: the CPU diarizer's turns as JSON on stdout (bench/diarize.sh) */
int cli_diarize(int argc, char **argv);

/* doc.c: gpuscribe(1) in roff and the bash completion script, from the settings table
 * (`gpuscribe help --man`, `gpuscribe help --bash-completion`) */
void cli_print_man(FILE *out);
void cli_print_bash_completion(FILE *out);

#endif
