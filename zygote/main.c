/* pyexec-zygote: a worker's warm interpreter (lib/zygote.h).
 *
 * Exec'd by the zygote's init in a sandbox of its own, with argv being the
 * run's python command line (argv[0] python's path), the run's
 * environment, cwd /work, fd ZYGOTE_SOCK_FD its socket to the worker. It
 * reads its configuration, initialises Python from that command line as
 * python's own main() would, says it is ready, and then only forks: each
 * MSG_ZFORK becomes an init (sandbox_init_warm_main) whose payload runs
 * Py_RunMain() in its copy of this interpreter, which runs /work/main.py
 * exactly as `python main.py` does (sys.path[0], __main__, the exit
 * status, SystemExit, KeyboardInterrupt, 120 for a lost stdout).
 *
 * This process runs pyexec's code and Python's start-up only: nothing of a
 * request reaches it. It ends when the worker closes the socket. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <linux/filter.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "asyncsafe.h"
#include "run.h"
#include "sandbox_init.h"
#include "sandbox_proto.h"
#include "util.h"
#include "zygote.h"

static struct zygote_config zc;
static struct sock_filter filter[ZYGOTE_FILTER_MAX];
static struct sock_fprog prog;
static struct sandbox_init_args args;
static char **own_argv, **own_envp;
/* The directory python started in (the plain zygote's own, with its
 * main.py; a run's path is the run's own directory instead). */
static char own_cwd[PATH_MAX];
/* The variables whose values a plain zygote's runs have of their own. */
static const char *const run_vars[ZYGOTE_RUN_NVARS] = ZYGOTE_RUN_VARS;
/* The bytes of the command line the kernel shows (/proc/self/cmdline):
 * the zygote and its inits show titles there; a payload puts these back,
 * as python's command line. */
static char *cmdline_area, *cmdline_saved;
static size_t cmdline_len;
/* The signal dispositions Python set up, for the payload: init's reset
 * them to the defaults. */
static struct sigaction python_actions[_NSIG];

/* warm_preload (README "Warm start"): run in the zygote, in a namespace of
 * its own, after python's start-up. */
static const char preload_source[] =
	"def _pyexec_preload(names, startup_objects, proc, writable, run_vars):\n"
	"    \"\"\"Imports each of names (a list) from the state python's start-up left,\n"
	"    vets what each import did, and takes every module the imports added out\n"
	"    of sys.modules into a pool, with what each module imported, so that a\n"
	"    run's import of one of them puts in sys.modules what importing it would\n"
	"    have loaded: the module and, transitively, what it imports. What the\n"
	"    collector tracked after start-up goes into startup_objects (a list),\n"
	"    and then everything it tracks is frozen. proc is where /proc is, writable\n"
	"    the directories where a file written is seen, run_vars the variables\n"
	"    whose values are each run's own (that no import may read). Returns \"\"\n"
	"    or the sentence of the rule a module broke.\"\"\"\n"
	"    import sys\n"
	"    startup = set(sys.modules)\n"
	"    import gc\n"
	"    startup_objects.extend(gc.get_objects())\n"
	"    import os, signal, atexit, builtins, _frozen_importlib as boot\n"
	"    # what this function imported for itself is not the preloads'\n"
	"    for n in set(sys.modules) - startup:\n"
	"        del sys.modules[n]\n"
	"    # the start-up's warnings module, if it loaded one (a .pth file may)\n"
	"    warnings = sys.modules.get(\"warnings\")\n"
	"    importer_cache = dict(sys.path_importer_cache)\n"
	"    sigs = sorted(signal.valid_signals())\n"
	"    startup_keys = {n: set(vars(sys.modules[n])) for n in startup if n != \"__main__\"}\n"
	"\n"
	"    def threads():\n"
	"        with open(proc + \"/self/status\") as f:\n"
	"            for line in f:\n"
	"                if line.startswith(\"Threads:\"):\n"
	"                    return int(line.split()[1])\n"
	"        return -1\n"
	"\n"
	"    def files():\n"
	"        out = set()\n"
	"        for top in writable:\n"
	"            for d, dirs, fs in os.walk(top):\n"
	"                out.update(os.path.join(d, n) for n in dirs + fs)\n"
	"        return out\n"
	"\n"
	"    def state():\n"
	"        return (threads(), sorted(os.listdir(proc + \"/self/fd\")), files(),\n"
	"                atexit._ncallbacks(), [signal.getsignal(s) for s in sigs],\n"
	"                list(sys.meta_path), list(sys.path_hooks), list(sys.path),\n"
	"                dict(os.environ), sys.getrecursionlimit(),\n"
	"                (sys.stdin, sys.stdout, sys.stderr, sys.displayhook, sys.excepthook),\n"
	"                {n: set(vars(sys.modules[n])) for n in startup_keys})\n"
	"\n"
	"    rules = (\"started a thread\", \"left a file descriptor open\", \"wrote a file\",\n"
	"             \"registered an atexit function\", \"changed a signal handler\",\n"
	"             \"changed sys.meta_path\", \"changed sys.path_hooks\", \"changed sys.path\",\n"
	"             \"changed os.environ\", \"changed the recursion limit\",\n"
	"             \"replaced a standard stream or hook of sys\",\n"
	"             \"changed a module python's start-up loaded\")\n"
	"\n"
	"    # What imports what: every import statement (builtins.__import__) and\n"
	"    # every load (_find_and_load) while the preloads are imported.\n"
	"    edges, stack = {}, []\n"
	"    plain_import, plain_find_and_load = builtins.__import__, boot._find_and_load\n"
	"\n"
	"    def edge(a, b):\n"
	"        if a and b and a != b:\n"
	"            e = edges.setdefault(a, [])\n"
	"            if b not in e:\n"
	"                e.append(b)\n"
	"\n"
	"    def traced_import(name, globals=None, locals=None, fromlist=(), level=0):\n"
	"        module = plain_import(name, globals, locals, fromlist, level)\n"
	"        g = globals or {}\n"
	"        importer = g.get(\"__name__\")\n"
	"        try:\n"
	"            full = boot._resolve_name(name, g.get(\"__package__\") or \"\", level) \\\n"
	"                if level else name\n"
	"        except Exception:\n"
	"            full = None\n"
	"        if full:\n"
	"            edge(importer, full)\n"
	"            for f in fromlist or ():\n"
	"                if full + \".\" + f in sys.modules:\n"
	"                    edge(importer, full + \".\" + f)\n"
	"        return module\n"
	"\n"
	"    def traced_find_and_load(name, import_):\n"
	"        edge(stack[-1] if stack else None, name)\n"
	"        stack.append(name)\n"
	"        before = set(sys.modules)\n"
	"        try:\n"
	"            return plain_find_and_load(name, import_)\n"
	"        finally:\n"
	"            stack.pop()\n"
	"            # what appeared while it loaded, its imports' and what it put\n"
	"            # in sys.modules itself (Cython's runtime modules)\n"
	"            for n in set(sys.modules) - before:\n"
	"                edge(name, n)\n"
	"\n"
	"    # Reads of run_vars through os.environ (os.getenv, expanduser...).\n"
	"    read = set()\n"
	"\n"
	"    class Watched(type(os.environ)):\n"
	"        def __getitem__(self, key):\n"
	"            read.add(key)\n"
	"            return super().__getitem__(key)\n"
	"\n"
	"    plain_environ = os.environ\n"
	"    watched = Watched.__new__(Watched)\n"
	"    watched.__dict__.update(vars(plain_environ))\n"
	"\n"
	"    replays, bindings = {}, {}\n"
	"    for name in names:\n"
	"        before = state()\n"
	"        filters = list(warnings.filters) if warnings else []\n"
	"        r, w = os.pipe()\n"
	"        saved = os.dup(1), os.dup(2)\n"
	"        os.dup2(w, 1)\n"
	"        os.dup2(w, 2)\n"
	"        builtins.__import__, boot._find_and_load = traced_import, traced_find_and_load\n"
	"        if run_vars:\n"
	"            os.environ = watched\n"
	"        read.clear()\n"
	"        stack[:] = [name]\n"
	"        try:\n"
	"            __import__(name)\n"
	"            error = None\n"
	"        except BaseException as e:\n"
	"            error = \"%s: %s\" % (type(e).__name__, e)\n"
	"        finally:\n"
	"            builtins.__import__, boot._find_and_load = plain_import, plain_find_and_load\n"
	"            os.environ = plain_environ\n"
	"            sys.stdout.flush()\n"
	"            sys.stderr.flush()\n"
	"            os.dup2(saved[0], 1)\n"
	"            os.dup2(saved[1], 2)\n"
	"            for fd in saved + (w,):\n"
	"                os.close(fd)\n"
	"        os.set_blocking(r, False)\n"
	"        try:\n"
	"            printed = os.read(r, 1)\n"
	"        except BlockingIOError:\n"
	"            printed = b\"\"\n"
	"        os.close(r)\n"
	"        if error is not None:\n"
	"            return \"%s cannot be imported (%s)\" % (name, error)\n"
	"        if printed:\n"
	"            return \"%s printed when imported\" % name\n"
	"        for var in run_vars:\n"
	"            if var in read:\n"
	"                return \"%s read %s, which is each run's own, when imported\" % (name, var)\n"
	"        # Warning filters a module adds at import (numpy does) go, to come\n"
	"        # back when a run imports it, as its import would have added them.\n"
	"        if warnings is not None:\n"
	"            now = list(warnings.filters)\n"
	"            if now[len(now) - len(filters):] != filters:\n"
	"                return \"%s changed warnings.filters other than by adding filters \" \\\n"
	"                       \"ahead of the others when imported\" % name\n"
	"            replays[name] = now[:len(now) - len(filters)]\n"
	"            warnings.filters[:] = filters\n"
	"            warnings._filters_mutated()\n"
	"        # A submodule of a package python's start-up loaded (collections.abc)\n"
	"        # is bound to it as it is loaded: unbound now, bound again when a\n"
	"        # run imports it.\n"
	"        for parent, keys in before[-1].items():\n"
	"            module = sys.modules[parent]\n"
	"            for k in set(vars(module)) - keys:\n"
	"                child = sys.modules.get(parent + \".\" + k)\n"
	"                if child is not None and parent + \".\" + k not in startup and \\\n"
	"                        getattr(module, k) is child:\n"
	"                    bindings[parent + \".\" + k] = (module, k)\n"
	"                    delattr(module, k)\n"
	"        after = state()\n"
	"        for rule, b, a in zip(rules, before, after):\n"
	"            if a != b:\n"
	"                return \"%s %s when imported\" % (name, rule)\n"
	"    pool = {}\n"
	"    for n in list(sys.modules):\n"
	"        if n not in startup:\n"
	"            pool[n] = sys.modules.pop(n)\n"
	"    sys.path_importer_cache.clear()\n"
	"    sys.path_importer_cache.update(importer_cache)\n"
	"    find = boot._find_spec\n"
	"    taken = set()\n"
	"\n"
	"    def needs(name):\n"
	"        \"\"\"The pool's modules importing name loads, in the pool's order.\"\"\"\n"
	"        seen, todo = set(), [name]\n"
	"        while todo:\n"
	"            n = todo.pop()\n"
	"            if n in seen or n not in pool:\n"
	"                continue\n"
	"            seen.add(n)\n"
	"            todo.extend(edges.get(n, ()))\n"
	"            if \".\" in n:\n"
	"                todo.append(n.rpartition(\".\")[0])\n"
	"        return [n for n in pool if n in seen]\n"
	"\n"
	"    def _find_and_load(name, import_):\n"
	"        \"\"\"pyexec's warm start (README \"Warm start\"): a preloaded module whose\n"
	"        import would load what was preloaded (nothing of it loaded another\n"
	"        way, nothing of it shadowed on sys.path now) is put in sys.modules\n"
	"        with what it imports, as its import would have; every other import\n"
	"        goes as it does in python.\"\"\"\n"
	"        if name in pool and name not in taken:\n"
	"            need = [n for n in needs(name) if n not in taken]\n"
	"            try:\n"
	"                usable = all(n not in sys.modules for n in need) and all(\n"
	"                    getattr(find(n, None), \"origin\", None) ==\n"
	"                    getattr(pool[n].__spec__, \"origin\", None)\n"
	"                    for n in need if \".\" not in n)\n"
	"            except Exception:\n"
	"                usable = False\n"
	"            if usable:\n"
	"                for n in need:\n"
	"                    for f in reversed(replays.get(n, ())):\n"
	"                        try:\n"
	"                            warnings.filters.remove(f)\n"
	"                        except ValueError:\n"
	"                            pass\n"
	"                        warnings.filters.insert(0, f)\n"
	"                    if n in replays:\n"
	"                        warnings._filters_mutated()\n"
	"                    sys.modules[n] = pool[n]\n"
	"                    if n in bindings:\n"
	"                        setattr(bindings[n][0], bindings[n][1], pool[n])\n"
	"                    taken.add(n)\n"
	"                # what numpy.random drew at its import is drawn anew\n"
	"                if \"numpy.random\" in need:\n"
	"                    pool[\"numpy.random\"].seed()\n"
	"                return sys.modules[name]\n"
	"        return plain_find_and_load(name, import_)\n"
	"\n"
	"    boot._find_and_load = _find_and_load\n"
	"    gc.freeze()\n"
	"    return \"\"\n";

static void say(int type, int err, int step, const char *text)
{
	(void)sandbox_msg_send_text(ZYGOTE_SOCK_FD, type, err, step, text);
}

__attribute__((noreturn))
static void fail(const char *what)
{
	say(MSG_ERROR, EPROTO, STEP_SETUP, what);
	_exit(1);
}

static void read_config(void)
{
	struct sandbox_msg m;
	struct iovec iov[3] = {
		{ &m, sizeof(m) }, { &zc, sizeof(zc) }, { filter, sizeof(filter) }
	};
	size_t nfd;
	ssize_t n = sandbox_msg_recv_fds(ZYGOTE_SOCK_FD, iov, 3, NULL, 0, &nfd);

	if (n == 0)
		_exit(0);
	if (n < (ssize_t)(sizeof(m) + sizeof(zc)) || m.type != MSG_ZCONFIG ||
	    zc.filter_len > ZYGOTE_FILTER_MAX ||
	    (size_t)n != sizeof(m) + sizeof(zc) + zc.filter_len * sizeof(filter[0]))
		fail("the zygote's configuration is malformed");
	prog.len = (unsigned short)zc.filter_len;
	prog.filter = filter;
	args = zc.args;
	args.cfg = &zc.cfg;
	args.filter = &prog;
	args.sock = args.status_w = args.zygote_fd = args.log_fd = -1;
}

/* A run's last step, in the interpreter forked from this one: Python's
 * signal dispositions and command line back, then `python main.py`. */
__attribute__((noreturn))
static void run_main(void)
{
	for (int sig = 1; sig < _NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)sigaction(sig, &python_actions[sig], NULL);
	memcpy(cmdline_area, cmdline_saved, cmdline_len);
	PyOS_AfterFork_Child();
	exit(Py_RunMain());
}

/* The payload's last step (sandbox_init_args.payload_exec): when spec is
 * this interpreter's own command line, run it here; else return, and the
 * payload execs python as a cold run does. Runs after seccomp. */
static void warm_payload(const struct run_spec *spec)
{
	/* A python gone from its path fails as a cold run does (below). */
	if (strcmp(spec->path, own_argv[0]) != 0 || !util_same_strings(spec->argv, own_argv) ||
	    !util_same_strings(spec->envp, own_envp) || access(spec->path, X_OK) < 0)
		return;
	run_main();
}

/* The text of the Python exception being raised, into buf (it is cleared). */
static void exception_text(char *buf, size_t len)
{
	PyObject *type, *value, *tb, *text;

	PyErr_Fetch(&type, &value, &tb);
	text = value != NULL ? PyObject_Str(value) : NULL;
	snprintf(buf, len, "pyexec's preload failed: %s: %s",
		 type != NULL ? ((PyTypeObject *)type)->tp_name : "?",
		 text != NULL && PyUnicode_Check(text) ? PyUnicode_AsUTF8(text) : "");
	PyErr_Clear();
	Py_XDECREF(text);
	Py_XDECREF(type);
	Py_XDECREF(value);
	Py_XDECREF(tb);
}

/* Imports and vets zc.preload's modules (preload_source), or ends the
 * zygote with MSG_ERROR, whose text starts with ZYGOTE_PRELOAD_REFUSED
 * when a module broke a rule. */
static void preload(void)
{
	char why[SANDBOX_MSG_TEXT] = "", text[SANDBOX_MSG_TEXT];
	PyObject *globals, *code, *ran = NULL, *fn, *names, *startup, *result = NULL;

	if (zc.preload[0] == '\0')
		return;
	globals = PyDict_New();
	names = PyUnicode_FromString(zc.preload);
	startup = PyList_New(0);
	if (globals == NULL || names == NULL || startup == NULL ||
	    PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) < 0)
		fail("out of memory");
	/* Named as importlib's own code: a traceback through an import leaves
	 * its frames out, as it does importlib's. */
	code = Py_CompileString(preload_source, "<frozen importlib._bootstrap>", Py_file_input);
	if (code != NULL)
		ran = PyEval_EvalCode(code, globals, globals);
	fn = ran != NULL ? PyDict_GetItemString(globals, "_pyexec_preload") : NULL;
	if (fn != NULL) {
		PyObject *comma = PyUnicode_FromString(",");
		PyObject *list = comma != NULL ? PyUnicode_Split(names, comma, -1) : NULL;

		/* The rlimits layer's zygote sees the host: its own directory
		 * is the one place where no one else writes. */
		PyObject *proc = PyUnicode_FromString(zc.plain ? "/proc" : "/" SANDBOX_OLD_ROOT "/proc");
		PyObject *writable = zc.plain ? Py_BuildValue("(s)", own_cwd)
					      : Py_BuildValue("(sss)", SANDBOX_WORK, "/tmp", "/dev/shm");
		/* In a namespace their values are the same in every run. */
		PyObject *vars = zc.plain ? Py_BuildValue("(sss)", run_vars[0], run_vars[1],
							  run_vars[2])
					  : PyTuple_New(0);

		result = list != NULL && proc != NULL && writable != NULL && vars != NULL
			 ? PyObject_CallFunctionObjArgs(fn, list, startup, proc, writable, vars,
							NULL)
			 : NULL;
		Py_XDECREF(vars);
		Py_XDECREF(writable);
		Py_XDECREF(proc);
		Py_XDECREF(list);
		Py_XDECREF(comma);
	}
	if (result == NULL)
		exception_text(why, sizeof(why));
	else if (PyUnicode_Check(result))
		snprintf(why, sizeof(why), "%s", PyUnicode_AsUTF8(result));
	Py_XDECREF(result);
	Py_XDECREF(ran);
	Py_XDECREF(code);
	Py_DECREF(names);
	if (why[0] != '\0') {
		snprintf(text, sizeof(text), ZYGOTE_PRELOAD_REFUSED "%s", why);
		fail(text);
	}
	/* Frozen, the preloads' objects are never looked at by a run's
	 * collections, the last one at exit included, and their pages stay
	 * the zygote's. What start-up made is tracked again (as young
	 * objects): a run's collections, and its exit, treat it as a cold
	 * run's do (the dict of __main__, say, with the script's globals). */
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(startup); i++) {
		PyObject *o = PyList_GET_ITEM(startup, i);

		PyObject_GC_UnTrack(o);
		PyObject_GC_Track(o);
	}
	Py_DECREF(startup);
}

static void python_start(int argc, char **argv)
{
	PyStatus st;
	PyConfig c;

	PyConfig_InitPythonConfig(&c);
	st = PyConfig_SetBytesArgv(&c, argc, argv);
	if (!PyStatus_Exception(st))
		st = Py_InitializeFromConfig(&c);
	PyConfig_Clear(&c);
	if (PyStatus_Exception(st)) {
		char text[SANDBOX_MSG_TEXT];

		snprintf(text, sizeof(text), "Python did not start: %s",
			 st.err_msg != NULL ? st.err_msg : "exit");
		fail(text);
	}
	for (int sig = 1; sig < _NSIG; sig++)
		(void)sigaction(sig, NULL, &python_actions[sig]);
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23    /* Linux 5.14 */
#endif

/* Calls fn(a, b, arg) for each writable private mapping [a, b) of this
 * process but its stack, in /proc/self/maps, until one returns -1. -1 when
 * that cannot be read, or fn returned -1. */
static int each_private_mapping(int (*fn)(unsigned long, unsigned long, void *), void *arg)
{
	int rc = 0;

	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];

	/* The namespace layer's zygote has no /proc of its own, but sees the
	 * host's root (its inits go back to it), and there its own process. */
	if (f == NULL)
		f = fopen("/" SANDBOX_OLD_ROOT "/proc/self/maps", "re");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long a, b;
		char perms[8];

		/* a line longer than line[] goes by in pieces that do not parse */
		if (sscanf(line, "%lx-%lx %7s", &a, &b, perms) != 3 || strncmp(perms, "rw", 2) != 0 ||
		    perms[3] != 'p' || strstr(line, "[stack]") != NULL)
			continue;
		if (fn(a, b, arg) < 0) {
			rc = -1;
			break;
		}
	}
	(void)fclose(f);
	return rc;
}

/* MADV_POPULATE_WRITE over the pages of [a, b) that are present, a batch
 * at a time, until the fd *until (-1: none) is readable: a request there
 * already is better served at once, its run copying what it writes as it
 * writes it. 0, or -1 once it was. */
static int populate_present(unsigned long a, unsigned long b, void *until)
{
	enum { BATCH = 256 };         /* pages between two looks at *until */
	unsigned long page = (unsigned long)sysconf(_SC_PAGESIZE);
	static unsigned char vec[1 << 16];
	struct pollfd pfd = { .fd = until != NULL ? *(int *)until : -1, .events = POLLIN };

	for (unsigned long p = a; p < b; p += sizeof(vec) * page) {
		unsigned long n = (b - p) / page < sizeof(vec) ? (b - p) / page : sizeof(vec);

		if (mincore((void *)p, n * page, vec) < 0)
			break;
		for (unsigned long i = 0, j; i < n; i = j) {
			for (; i < n && !(vec[i] & 1); i++)
				;
			for (j = i; j < n && j - i < BATCH && (vec[j] & 1); j++)
				;
			if (j == i)
				continue;
			if (pfd.fd >= 0 && poll(&pfd, 1, 0) != 0)
				return -1;
			(void)madvise((void *)(p + i * page), (j - i) * page, MADV_POPULATE_WRITE);
		}
	}
	return 0;
}

/* The pages of the zygote a run writes, as learnt_written_pages found
 * them: nhot ranges of pages, none when that failed. */
struct page_range {
	unsigned long start, end;
};
enum { HOT_MAX = 4096 };
static struct page_range hot[HOT_MAX];
static size_t nhot;

/* A run's copy, made while it waits for its request (forked ahead: the
 * payload of a warm sandbox, or a plain zygote's run), of the zygote's
 * pages that it will write: its Python (its exit above all, which touches
 * most of what start-up made) would copy them one fault at a time while
 * the request waits. Those learnt_written_pages found, or else every
 * present page of the zygote's writable private memory (some of which no
 * run writes). It stops when until_fd, where the request comes, is
 * readable. Without MADV_POPULATE_WRITE (before Linux 5.14) the faults
 * stay the run's. */
static void copy_present_pages(int until_fd)
{
	if (nhot == 0) {
		(void)each_private_mapping(populate_present, &until_fd);
		return;
	}
	for (size_t i = 0; i < nhot; i++)
		if (populate_present(hot[i].start, hot[i].end, &until_fd) < 0)
			return;
}

#define PM_PRESENT   (1ULL << 63)
#define PM_EXCLUSIVE (1ULL << 56)  /* mapped by this process only: Linux 4.2 */

/* The zygote's own pagemap, opened while it is still dumpable (an
 * undumpable process's /proc files are root's), and closed once read:
 * no run has it. */
static int own_pagemap = -1;

/* Adds to hot[] the ranges of [a, b) that this process holds alone. */
static int add_own_pages(unsigned long a, unsigned long b, void *unused)
{
	unsigned long page = (unsigned long)sysconf(_SC_PAGESIZE);
	uint64_t e[512];

	(void)unused;
	for (unsigned long p = a; p < b; p += 512 * page) {
		unsigned long n = (b - p) / page < 512 ? (b - p) / page : 512;

		if (pread(own_pagemap, e, n * sizeof(e[0]), (off_t)(p / page * sizeof(e[0]))) !=
		    (ssize_t)(n * sizeof(e[0]))) {
			nhot = HOT_MAX + 1;   /* unknown: none */
			return -1;
		}
		for (unsigned long i = 0; i < n && nhot <= HOT_MAX; i++) {
			unsigned long at = p + i * page;

			if ((e[i] & (PM_PRESENT | PM_EXCLUSIVE)) != (PM_PRESENT | PM_EXCLUSIVE))
				continue;
			if (nhot > 0 && hot[nhot - 1].end == at)
				hot[nhot - 1].end = at + page;
			else if (nhot < HOT_MAX)
				hot[nhot++] = (struct page_range){ at, at + page };
			else
				nhot = HOT_MAX + 1;
		}
	}
	return 0;
}

/* learnt_written_pages' child: an empty script (one that imports the
 * preloads, when runs do), and Python's finalisation as at a run's exit
 * (what it prints goes to out, a pipe nobody reads); then a byte on done,
 * and it waits for hold to close. */
__attribute__((noreturn))
static void probe_child(int done, int hold, int out)
{
	char c;

	/* it goes with the zygote, whatever it is doing */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() == 1)
		_exit(1);
	PyOS_AfterFork_Child();
	if (dup2(out, STDOUT_FILENO) < 0 || dup2(out, STDERR_FILENO) < 0)
		_exit(1);
	/* A dependency set's runs import its modules, then exit with them. */
	if (zc.runs_import && zc.preload[0] != '\0') {
		char script[ZYGOTE_PRELOAD_LEN + 16];

		snprintf(script, sizeof(script), "import %s\n", zc.preload);
		(void)PyRun_SimpleString(script);
	} else {
		(void)PyRun_SimpleString("pass");
	}
	(void)Py_FinalizeEx();
	if (util_write_all(done, "", 1) < 0)
		_exit(1);
	while (read(hold, &c, 1) < 0 && errno == EINTR)
		;
	_exit(0);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		(void)close(*fd);
	*fd = -1;
}

/* Which of the zygote's pages a run writes, learnt once per zygote: a
 * child of it finalises Python as a run does at its exit, then waits.
 * Each page it wrote is now a copy of its own, and the zygote's page the
 * zygote's alone again: the zygote's pagemap says which (with the few the
 * zygote writes meanwhile). A run's spare then copies those only. Nothing
 * of any request is involved. When anything fails, runs copy every
 * present page. */
static void learnt_written_pages(void)
{
	int done[2] = { -1, -1 }, hold[2] = { -1, -1 }, out[2] = { -1, -1 };
	pid_t pid = -1;
	ssize_t n = -1;
	char c;

	if (own_pagemap >= 0 && pipe2(done, O_CLOEXEC) == 0 && pipe2(hold, O_CLOEXEC) == 0 &&
	    pipe2(out, O_CLOEXEC) == 0) {
		PyOS_BeforeFork();
		pid = fork();
		if (pid == 0) {
			(void)close(hold[1]);
			probe_child(done[1], hold[0], out[1]);
		}
		PyOS_AfterFork_Parent();
	}
	close_fd(&out[0]);
	close_fd(&out[1]);
	close_fd(&done[1]);
	close_fd(&hold[0]);
	while (pid > 0 && (n = read(done[0], &c, 1)) < 0 && errno == EINTR)
		;
	nhot = 0;
	if (n != 1 || each_private_mapping(add_own_pages, NULL) < 0)
		nhot = HOT_MAX + 1;
	close_fd(&hold[1]);           /* the child exits */
	close_fd(&done[0]);
	if (pid > 0 && waitpid(pid, NULL, 0) != pid)
		nhot = HOT_MAX + 1;
	if (nhot > HOT_MAX)
		nhot = 0;
	close_fd(&own_pagemap);
}

/* One MSG_ZFORK: an init for its root, with its socket and status pipe. */
static void fork_one(void)
{
	struct sandbox_msg m;
	struct zygote_fork zf;
	struct iovec iov[2] = { { &m, sizeof(m) }, { &zf, sizeof(zf) } };
	int fds[SANDBOX_MSG_FDS] = { -1, -1, -1 };
	int flags = CLONE_PARENT | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;
	size_t nfd;
	ssize_t n = sandbox_msg_recv_fds(ZYGOTE_SOCK_FD, iov, 2, fds, SANDBOX_MSG_FDS, &nfd);
	pid_t pid;

	if (n == 0 || (n < 0 && errno != EMSGSIZE))
		_exit(0);       /* the worker is gone, or let this zygote go */
	if (n != (ssize_t)(sizeof(m) + sizeof(zf)) || m.type != MSG_ZFORK || nfd != 2 ||
	    memchr(zf.root, '\0', sizeof(zf.root)) == NULL)
		fail("a fork request is malformed");
	if (!zc.cfg.network)
		flags |= CLONE_NEWNET;
	args.sock = fds[0];
	args.status_w = fds[1];
	memcpy(args.root, zf.root, sizeof(args.root));
	args.new_cgroup_ns = zf.new_cgroup_ns != 0;
	args.payload_exec = warm_payload;
	args.payload_ahead = copy_present_pages;
	PyOS_BeforeFork();
	pid = (pid_t)syscall(SYS_clone, (unsigned long)flags, NULL, NULL, NULL, 0UL);
	if (pid == 0)
		sandbox_init_warm_main(&args);
	PyOS_AfterFork_Parent();
	say(MSG_ZFORKED, pid < 0 ? errno : 0, pid, NULL);
	(void)close(fds[0]);
	(void)close(fds[1]);
}

/* A plain zygote's run (MSG_ZRUN), its directory and variables. */
static struct zygote_run zr;

/* In a plain zygote's run, before Py_RunMain: the run's own values of
 * ZYGOTE_RUN_VARS in os.environ (and so the C environment), and its main.py
 * where the zygote's was: what python's start-up made of them in a cold
 * run of the same directory. Failures go to the run's stderr, as a cold
 * run's failure to start would. */
static void run_point_at_own(void)
{
	PyObject *name = PyUnicode_FromString("os");
	PyObject *os = name != NULL ? PyImport_GetModule(name) : NULL;
	PyObject *environ = os != NULL ? PyObject_GetAttrString(os, "environ") : NULL;
	PyConfig *c = (PyConfig *)_PyInterpreterState_GetConfig(PyInterpreterState_Get());
	size_t own = strlen(own_cwd);
	char cwd[PATH_MAX], *file, *rest;

	/* Over the stand-ins, in the block the kernel shows. */
	for (char **e = own_envp; *e != NULL; e++) {
		int i = zygote_run_var(*e);
		char *value = i >= 0 ? *e + strlen(run_vars[i]) + 1 : NULL;

		if (value == NULL)
			continue;
		if (strlen(value) != strlen(zr.values[i]))
			asyncsafe_fail(STDERR_FILENO, "set the run's", run_vars[i], EINVAL);
		memcpy(value, zr.values[i], strlen(zr.values[i]));
	}
	for (int i = 0; environ != NULL && i < ZYGOTE_RUN_NVARS; i++) {
		PyObject *v = PyUnicode_DecodeFSDefault(zr.values[i]);

		if (v == NULL || PyMapping_SetItemString(environ, run_vars[i], v) < 0)
			Py_CLEAR(environ);
		Py_XDECREF(v);
	}
	Py_XDECREF(os);
	Py_XDECREF(name);
	if (environ == NULL) {
		PyErr_Clear();
		asyncsafe_fail(STDERR_FILENO, "set the run's environment", NULL, ENOMEM);
	}
	Py_DECREF(environ);
	/* config_run_filename_abspath made it absolute from the zygote's cwd */
	file = c->run_filename != NULL ? Py_EncodeLocale(c->run_filename, NULL) : NULL;
	if (file == NULL || strncmp(file, own_cwd, own) != 0 || file[own] != '/') {
		PyMem_Free(file);
		return;
	}
	rest = file + own;
	if (getcwd(cwd, sizeof(cwd)) == NULL || strlen(cwd) + strlen(rest) >= sizeof(cwd))
		asyncsafe_fail(STDERR_FILENO, "find the run's directory", NULL, errno);
	strcat(cwd, rest);
	PyMem_Free(file);
	PyMem_RawFree(c->run_filename);
	c->run_filename = Py_DecodeLocale(cwd, NULL);
	if (c->run_filename == NULL)
		asyncsafe_fail(STDERR_FILENO, "set the run's main.py", NULL, ENOMEM);
}


/* The child of a plain zygote's fork, a spare until its run comes: dies
 * with the worker; waits on its socket (sock) for MSG_ZRUN, its run with
 * the run's stdin, stdout and stderr, sent once the worker has put it in
 * the run's cgroup (it exits when the socket closes first); is set up as a
 * cold run is (run_child_setup: its own process group, the default signal
 * dispositions, fds, cwd, limits, death with the worker); and runs. */
__attribute__((noreturn))
static void run_child(int sock, pid_t worker)
{
	struct sandbox_msg m;
	struct iovec iov[2] = { { &m, sizeof(m) }, { &zr, sizeof(zr) } };
	int fds[SANDBOX_MSG_FDS] = { -1, -1, -1, -1 };
	struct run_spec spec;
	size_t nfd;
	ssize_t n;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != worker)
		_exit(127);
	util_title_set("sandbox (spare)");
	copy_present_pages(sock);
	n = sandbox_msg_recv_fds(sock, iov, 2, fds, SANDBOX_MSG_FDS, &nfd);
	if (n != (ssize_t)(sizeof(m) + sizeof(zr)) || m.type != MSG_ZRUN || nfd != 3 ||
	    memchr(zr.cwd, '\0', sizeof(zr.cwd)) == NULL)
		_exit(127);
	for (int i = 0; i < ZYGOTE_RUN_NVARS; i++)
		if (memchr(zr.values[i], '\0', sizeof(zr.values[i])) == NULL)
			_exit(127);
	memset(&spec, 0, sizeof(spec));
	spec.cwd = zr.cwd;
	spec.lim = zr.lim;
	run_child_setup(&spec, fds[0], fds[1], fds[2], worker, 0);
	/* as an exec of python would make it */
	(void)prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	run_point_at_own();
	/* A python gone from its path fails as a cold run does. */
	if (access(own_argv[0], X_OK) < 0) {
		execve(own_argv[0], own_argv, own_envp);
		asyncsafe_fail(STDERR_FILENO, "execute", own_argv[0], errno);
	}
	run_main();
}

/* One MSG_ZFORK of a plain zygote: a child (run_child) with its socket. */
static void plain_fork_one(void)
{
	struct sandbox_msg m;
	struct iovec iov[1] = { { &m, sizeof(m) } };
	int fds[SANDBOX_MSG_FDS] = { -1, -1, -1, -1 };
	size_t nfd;
	ssize_t n = sandbox_msg_recv_fds(ZYGOTE_SOCK_FD, iov, 1, fds, SANDBOX_MSG_FDS, &nfd);
	pid_t pid, worker = getppid();

	if (n == 0 || (n < 0 && errno != EMSGSIZE))
		_exit(0);       /* the worker is gone, or let this zygote go */
	if (n != (ssize_t)sizeof(m) || m.type != MSG_ZFORK || nfd != 1)
		fail("a fork request is malformed");
	PyOS_BeforeFork();
	pid = (pid_t)syscall(SYS_clone, (unsigned long)CLONE_PARENT, NULL, NULL, NULL, 0UL);
	if (pid == 0)
		run_child(fds[0], worker);
	PyOS_AfterFork_Parent();
	say(MSG_ZFORKED, pid < 0 ? errno : 0, pid, NULL);
	(void)close(fds[0]);
}

/* Copies argv (util_title_init takes over its strings) into own_argv, and
 * the bytes of its strings into cmdline_saved. Exits on failure. */
static void keep_command_line(int argc, char **argv)
{
	char *end = argv[0] + strlen(argv[0]) + 1;

	for (int i = 1; i < argc; i++)
		if (argv[i] == end)
			end = argv[i] + strlen(argv[i]) + 1;
	cmdline_area = argv[0];
	cmdline_len = (size_t)(end - argv[0]);
	cmdline_saved = malloc(cmdline_len);
	own_argv = calloc((size_t)argc + 1, sizeof(*own_argv));
	if (cmdline_saved == NULL || own_argv == NULL)
		fail("out of memory");
	memcpy(cmdline_saved, cmdline_area, cmdline_len);
	for (int i = 0; i < argc; i++) {
		own_argv[i] = strdup(argv[i]);
		if (own_argv[i] == NULL)
			fail("out of memory");
	}
}

int main(int argc, char **argv, char **envp)
{
	const char *base;

	if (argc < 2 || fcntl(ZYGOTE_SOCK_FD, F_GETFD) < 0) {
		static const char usage[] =
			"pyexec-zygote: started by pyexec-fcgi only (see pyexec-fcgi(8))\n";

		(void)util_write_all(STDERR_FILENO, usage, sizeof(usage) - 1);
		return 2;
	}
	/* What a run of python shows in /proc/self/comm. */
	base = strrchr(argv[0], '/');
	(void)prctl(PR_SET_NAME, base != NULL ? base + 1 : argv[0], 0, 0, 0);
	own_envp = envp;
	keep_command_line(argc, argv);
	/* From the start: nothing shows python's command line but a run. */
	util_title_init(argc, argv, "pyexec-fcgi");
	util_title_set("zygote");
	read_config();
	if (getcwd(own_cwd, sizeof(own_cwd)) == NULL)
		fail("cannot find the zygote's directory");
	own_pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (own_pagemap < 0)
		own_pagemap = open("/" SANDBOX_OLD_ROOT "/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	/* Out of reach of the runs of the same user (the rlimits layer): no
	 * ptrace, no /proc/<pid>/mem. */
	if (zc.plain && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		fail("cannot make the zygote undumpable");
	python_start(argc, own_argv);
	preload();
	learnt_written_pages();
	/* Its directory goes: each run starts in its own. Removed here, it
	 * is not left for the worker to see to between requests. */
	if (zc.plain && (chdir("/") < 0 || rmdir(own_cwd) < 0))
		fail("cannot remove the zygote's directory");
	say(MSG_ZREADY, 0, 0, Py_GetVersion());
	for (;;) {
		if (zc.plain)
			plain_fork_one();
		else
			fork_one();
	}
}
