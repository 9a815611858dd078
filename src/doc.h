/*
 * doc: drover's own documentation, made from the settings table.
 *
 *   --help             plain text in 80 columns   drv_doc_help
 *   --print-reference  Markdown                   drv_doc_reference
 *                      (docs/configuration.md; a test checks it is current)
 *   --print-man        roff for man(7): drover(1) drv_doc_man
 *                      (the build writes build/drover.1 and installs it)
 *
 * All three walk the table once through drv_settings_docs(); what the
 * table does not hold (how settings combine, value syntax, signals, exit
 * statuses, other environment variables) is written once, in doc.c.
 */
#ifndef DRV_DOC_H
#define DRV_DOC_H

#include <stdio.h>

/* Usage line, a summary, then each action and each setting with its
 * flags, help, environment variable and default. `prog` names the
 * program in the usage line (NULL: "drover"). */
void drv_doc_help(FILE *out, const char *prog);

/* The Markdown reference of every setting. */
void drv_doc_reference(FILE *out);

/* The manual page drover(1): synopsis, description, every option (flags,
 * environment variable, YAML key, type, default), configuration sources,
 * environment, signals, exit statuses. */
void drv_doc_man(FILE *out);

#endif
