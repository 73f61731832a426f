#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "figures.h"
#include "util.h"

const char figures_source[] =
	"\"\"\"pyexec's matplotlib backend (MPLBACKEND=module://pyexec_figures): Agg,\n"
	"whose show() saves each open figure as figure-N.png in $OUTPUT_DIR (N\n"
	"counts from 1 in the run, past names already there) and closes it, so a\n"
	"figure shown comes back as a generated file. Written by pyexec.\"\"\"\n"
	"\n"
	"import os as _os\n"
	"\n"
	"from matplotlib.backends.backend_agg import *  # noqa: F401,F403\n"
	"from matplotlib.backends.backend_agg import FigureCanvasAgg as FigureCanvas  # noqa: F401\n"
	"\n"
	"_count = 0\n"
	"\n"
	"\n"
	"def show(*args, **kwargs):\n"
	"    global _count\n"
	"    from matplotlib import _pylab_helpers, pyplot\n"
	"    where = _os.environ.get(\"OUTPUT_DIR\") or _os.getcwd()\n"
	"    managers = sorted(_pylab_helpers.Gcf.get_all_fig_managers(), key=lambda m: m.num)\n"
	"    for manager in managers:\n"
	"        figure = manager.canvas.figure\n"
	"        while True:\n"
	"            _count += 1\n"
	"            path = _os.path.join(where, \"figure-%d.png\" % _count)\n"
	"            if not _os.path.lexists(path):\n"
	"                break\n"
	"        figure.savefig(path, format=\"png\")\n"
	"        pyplot.close(figure)\n";

static char dir_in_use[PATH_MAX];

const char *figures_dir(void)
{
	return dir_in_use[0] != '\0' ? dir_in_use : NULL;
}

const char *figures_path(int sandboxed)
{
	return figures_dir() == NULL ? NULL : sandboxed ? FIGURES_SANDBOX_DIR : figures_dir();
}

int figures_install(const char *deps_cache, char *err, size_t errlen)
{
	char dir[PATH_MAX], tmp[PATH_MAX], path[PATH_MAX];
	int fd, rc, saved, n1, n2, n3;

	n1 = snprintf(dir, sizeof(dir), "%s/" FIGURES_DIR, deps_cache);
	n2 = snprintf(path, sizeof(path), "%s/" FIGURES_DIR "/" FIGURES_MODULE ".py", deps_cache);
	n3 = snprintf(tmp, sizeof(tmp), "%s/" FIGURES_DIR "/." FIGURES_MODULE ".%ld", deps_cache,
		      (long)getpid());
	if (n1 < 0 || n2 < 0 || n3 < 0 || (size_t)n1 >= sizeof(dir) ||
	    (size_t)n2 >= sizeof(path) || (size_t)n3 >= sizeof(tmp)) {
		util_errorf(err, errlen, "%s/" FIGURES_DIR ": path too long", deps_cache);
		return -1;
	}
	if ((mkdir(dir, 0755) < 0 && errno != EEXIST) || chmod(dir, 0755) < 0) {
		util_errorf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		util_errorf(err, errlen, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	rc = fchmod(fd, 0644) < 0 ||
	     util_write_all(fd, figures_source, sizeof(figures_source) - 1) < 0 ? -1 : 0;
	saved = errno;
	if (close(fd) < 0 && rc == 0) {
		rc = -1;
		saved = errno;
	}
	if (rc == 0 && rename(tmp, path) < 0) {
		rc = -1;
		saved = errno;
	}
	if (rc < 0) {
		(void)unlink(tmp);
		util_errorf(err, errlen, "%s: %s", path, strerror(saved));
		return -1;
	}
	strcpy(dir_in_use, dir);
	return 0;
}
