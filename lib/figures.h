/* figures: plt.show() without savefig (the README's "POST execute").
 * pyexec writes a matplotlib backend of its own, pyexec_figures (Agg, whose
 * show() saves each open figure as figure-N.png in $OUTPUT_DIR and closes
 * it), into deps_cache/.python at start; every run has that directory on
 * PYTHONPATH (the namespace layer binds it read-only at FIGURES_SANDBOX_DIR,
 * so that a run learns nothing of the server's paths) and
 * MPLBACKEND=module://pyexec_figures. When it cannot be written, runs keep
 * MPLBACKEND=Agg and the log says why. */
#ifndef PYEXEC_FIGURES_H
#define PYEXEC_FIGURES_H

#include <stddef.h>

#define FIGURES_MODULE "pyexec_figures"
#define FIGURES_DIR ".python"          /* in deps_cache */
#define FIGURES_SANDBOX_DIR "/pyexec"  /* where the namespace layer binds it */

/* The module's source (Python). */
extern const char figures_source[];

/* Writes the module into deps_cache/.python (made 0755; the file 0644,
 * replaced atomically), and makes it the one runs use (figures_dir). 0,
 * or -1 with err, and runs do without. */
int figures_install(const char *deps_cache, char *err, size_t errlen);

/* The directory on the host, or NULL when the module is not installed
 * (this process's, inherited by its children). */
const char *figures_dir(void);

/* The directory as a run sees it (in the namespace sandbox or not), for
 * its PYTHONPATH; NULL when the module is not installed. */
const char *figures_path(int sandboxed);

#endif
