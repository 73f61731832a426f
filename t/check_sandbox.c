#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_main.h"
#include "collect.h"
#include "run.h"
#include "sandbox.h"
#include "sandbox_probe.h"
#include "subid.h"
#include "workdir.h"

#define PY "/usr/bin/python3"
#define MIB (1024 * 1024)
#define NOBODY 65534

static char tmpdir[64];         /* the suite's own mkdtemp directory */
static char req_dir[128];       /* <tmpdir>/req: the request's directory */
static char deps_dir[128];      /* <tmpdir>/deps: a dependency entry */
static int tmp_fd = -1, up_fd = -1;
static int out_fd = -1, err_fd = -1;
static struct sandbox_config cfg;
static struct sandbox_run run;
static struct collect_snapshot *snap;
static struct run_spec spec;
static struct run_result res;
static char *argv_buf[8];
static char *env_default[] = { "PATH=/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/tmp", NULL };
static char out[65536], err[65536];
static pid_t init_pid;
static struct sandbox_spare spare;

/* The sandbox's spawner, remembering init's pid. */
static pid_t spawn_recording(void *arg, const struct run_spec *s, int in, int o, int e)
{
	init_pid = sandbox_spawner.spawn(arg, s, in, o, e);
	return init_pid;
}

static void read_all(int fd, char *buf, size_t len)
{
	ssize_t n = pread(fd, buf, len - 1, 0);

	ck_assert_int_ge(n, 0);
	buf[n] = '\0';
}

static void setup(void)
{
	strcpy(tmpdir, "/tmp/check_sandbox.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	tmp_fd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(tmp_fd, 0);
	snprintf(req_dir, sizeof(req_dir), "%s/req", tmpdir);
	snprintf(deps_dir, sizeof(deps_dir), "%s/deps", tmpdir);
	ck_assert_int_eq(mkdir(req_dir, 0700), 0);
	ck_assert_int_eq(mkdirat(tmp_fd, "req/work", 0755), 0);
	up_fd = openat(tmp_fd, "req/work", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(up_fd, 0);
	out_fd = memfd_create("stdout", MFD_CLOEXEC);
	err_fd = memfd_create("stderr", MFD_CLOEXEC);
	ck_assert_int_ge(out_fd, 0);
	ck_assert_int_ge(err_fd, 0);
	snap = collect_snapshot_new();
	ck_assert_ptr_nonnull(snap);

	memset(&cfg, 0, sizeof(cfg));
	cfg.disk_bytes = 16 * MIB;
	cfg.proc = 1;
	cfg.uid = getuid();
	cfg.gid = getgid();
	cfg.run_uid = cfg.uid;
	cfg.run_gid = cfg.gid;
	sandbox_run_init(&run, &cfg, req_dir, up_fd, NULL, snap);

	memset(&spec, 0, sizeof(spec));
	memset(&res, 0, sizeof(res));
	spec.path = PY;
	spec.argv = argv_buf;
	spec.envp = env_default;
	spec.stdin_fd = -1;
	spec.watch_fd = -1;
	spec.stdout_fd = out_fd;
	spec.stderr_fd = err_fd;
	spec.lim.wall_ms = 20000;
	spec.lim.max_output = 60000;
	init_pid = -1;
	sandbox_spare_init(&spare);
}

static void teardown(void)
{
	sandbox_spare_discard(&spare);
	/* every init was reaped */
	ck_assert_int_eq(waitpid(-1, NULL, WNOHANG | __WALL), -1);
	ck_assert_int_eq(errno, ECHILD);
	sandbox_run_close(&run);
	collect_snapshot_free(snap);
	close(out_fd);
	close(err_fd);
	close(up_fd);
	ck_assert_int_eq(workdir_rmtree_at(tmp_fd, "req"), 0);
	ck_assert_int_eq(workdir_rmtree_at(tmp_fd, "deps"), 0);
	ck_assert_int_eq(workdir_rmtree_at(tmp_fd, "venv"), 0);
	close(tmp_fd);
	ck_assert_int_eq(rmdir(tmpdir), 0);
}

/* Runs `python -c script` in the sandbox: run_program's result, with out
 * and err filled. */
static int run_py(const char *script)
{
	struct run_spawner sp = sandbox_spawner;
	int rc;

	sp.spawn = spawn_recording;
	sp.arg = &run;
	argv_buf[0] = "python3";
	argv_buf[1] = "-c";
	argv_buf[2] = (char *)script;
	argv_buf[3] = NULL;
	rc = run_program(&spec, &sp, &res);
	read_all(out_fd, out, sizeof(out));
	read_all(err_fd, err, sizeof(err));
	return rc;
}

/* Runs script and requires a clean exit. */
static void run_py_ok(const char *script)
{
	int rc = run_py(script);

	ck_assert_msg(rc == 0, "run_program failed: %s (%s)", run.error, strerror(errno));
	ck_assert_msg(res.status == RUN_OK, "status %s, exit %d, signal %d, stderr: %s",
		      run_status_name(res.status), res.exit_code, res.signal, err);
}

static void write_upload(const char *name, const char *text, mode_t mode)
{
	int fd = openat(up_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
}

/* The contents of name under run.work_fd (the sandbox's /work). */
static void read_work(const char *name, char *buf, size_t len)
{
	int fd = openat(run.work_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	ck_assert_msg(fd >= 0, "cannot open %s in /work: %s", name, strerror(errno));
	read_all(fd, buf, len);
	close(fd);
}

/* Whether a process whose command line holds marker is alive. */
static int process_with_marker(const char *marker)
{
	struct dirent *de;
	DIR *d = opendir("/proc");
	int found = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL && !found) {
		char path[300], buf[4096];
		ssize_t n;
		int fd;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] == '\0')
				buf[i] = ' ';
		buf[n > 0 ? n : 0] = '\0';
		found = strstr(buf, marker) != NULL;
	}
	closedir(d);
	return found;
}

START_TEST(python_prints_hello)
{
	run_py_ok("print('hello')");
	ck_assert_str_eq(out, "hello\n");
	ck_assert_int_eq(res.exit_code, 0);
	ck_assert_str_eq(err, "");
	/* init is gone, and so is its status pipe */
	ck_assert_int_eq(kill(init_pid, 0), -1);
	ck_assert_int_eq(run.status_fd, -1);
}
END_TEST

START_TEST(cwd_is_work_and_files_land_in_work_fd)
{
	run_py_ok("import os\n"
		  "print(os.getcwd())\n"
		  "open('result.txt', 'w').write('42')\n"
		  "os.mkdir('sub')\n"
		  "open('/work/sub/deep.txt', 'w').write('deep')\n");
	ck_assert_str_eq(out, "/work\n");
	ck_assert_int_ge(run.work_fd, 0);
	read_work("result.txt", out, sizeof(out));
	ck_assert_str_eq(out, "42");
	read_work("sub/deep.txt", out, sizeof(out));
	ck_assert_str_eq(out, "deep");
	/* the host's upload directory is not the program's /work */
	ck_assert_int_eq(faccessat(up_fd, "result.txt", F_OK, AT_SYMLINK_NOFOLLOW), -1);
}
END_TEST

START_TEST(uploads_are_copied_and_recorded)
{
	struct collect_result cr;

	write_upload("main.py", "print('from main')\n", 0644);
	ck_assert_int_eq(mkdirat(up_fd, "data", 0755), 0);
	ck_assert_int_eq(mkdirat(up_fd, "data/nested", 0750), 0);
	write_upload("data/nested/in.txt", "nested upload", 0600);
	ck_assert_int_eq(symlinkat("/etc/shadow", up_fd, "evil"), 0);
	run_py_ok("import os, stat\n"
		  "exec(open('main.py').read())\n"
		  "print(open('data/nested/in.txt').read())\n"
		  "print(oct(stat.S_IMODE(os.stat('data/nested/in.txt').st_mode)))\n"
		  "print(oct(stat.S_IMODE(os.stat('data/nested').st_mode)))\n"
		  "print(os.path.lexists('evil'))\n"
		  "open('new.txt', 'w').write('generated')\n");
	ck_assert_str_eq(out, "from main\nnested upload\n0o600\n0o750\nFalse\n");
	/* Only the new file is a result: the snapshot holds the copies. */
	ck_assert_int_eq(collect_files(run.work_fd, snap, 100, MIB, &cr), 0);
	ck_assert_int_eq(cr.n, 1);
	ck_assert_str_eq(cr.files[0].name, "new.txt");
	collect_result_free(&cr);
}
END_TEST

START_TEST(changed_upload_is_a_result)
{
	struct collect_result cr;

	write_upload("data.txt", "old", 0644);
	run_py_ok("open('data.txt', 'w').write('new and longer')\n");
	ck_assert_int_eq(collect_files(run.work_fd, snap, 100, MIB, &cr), 0);
	ck_assert_int_eq(cr.n, 1);
	ck_assert_str_eq(cr.files[0].name, "data.txt");
	collect_result_free(&cr);
}
END_TEST

START_TEST(uploads_too_big_for_the_disk)
{
	int fd = openat(up_fd, "big.bin", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 2 * MIB), 0);
	close(fd);
	cfg.disk_bytes = MIB;
	ck_assert_int_eq(run_py("print('never')"), -1);
	ck_assert_int_eq(errno, ENOSPC);
	ck_assert_int_eq(run.uploads_too_big, 1);
	ck_assert_int_eq(run.work_fd, -1);
	ck_assert_str_eq(out, "");
	/* init was killed and reaped */
	ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
	ck_assert_int_eq(errno, ECHILD);
}
END_TEST

START_TEST(etc_passwd_is_one_line)
{
	char want[256];

	run_py_ok("import os, pwd\n"
		  "print(open('/etc/passwd').read(), end='')\n"
		  "print(pwd.getpwuid(os.getuid()).pw_name)\n"
		  "print(sorted(n for n in ('shadow', 'gshadow', 'sudoers', 'ssh') "
		  "if os.path.lexists('/etc/' + n)))\n"
		  "print(os.path.exists('/etc/ld.so.cache'))\n");
	snprintf(want, sizeof(want),
		 "pyexec:x:%lu:%lu:pyexec:/tmp:/usr/sbin/nologin\npyexec\n[]\nTrue\n",
		 (unsigned long)getuid(), (unsigned long)getgid());
	ck_assert_str_eq(out, want);
}
END_TEST

START_TEST(hostname_is_pyexec)
{
	run_py_ok("import socket\n"
		  "print(socket.gethostname())\n"
		  "print(open('/etc/hostname').read(), end='')\n");
	ck_assert_str_eq(out, "pyexec\npyexec\n");
}
END_TEST

START_TEST(pid_1_is_init)
{
	run_py_ok("import os\n"
		  "print(os.getppid())\n"
		  "print(os.getpid())\n"
		  "print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n"
		  "def reach(path, link):\n"
		  "    try:\n"
		  "        os.readlink(path) if link else open(path, 'rb').read(1)\n"
		  "        return 'open'\n"
		  "    except OSError:\n"
		  "        return 'refused'\n"
		  "try:\n"
		  "    fds = os.listdir('/proc/1/fd')\n"
		  "except OSError:\n"
		  "    fds = ['0']\n"
		  "print('fd', sorted(set(reach('/proc/1/fd/' + f, True) for f in fds)))\n"
		  "for what in ('root', 'cwd', 'environ', 'mem'):\n"
		  "    print(what, reach('/proc/1/' + what, what in ('root', 'cwd')))\n");
	/* init (not dumpable, all capabilities) is out of the program's reach */
	ck_assert_str_eq(out, "1\n2\n[1, 2]\nfd ['refused']\nroot refused\ncwd refused\n"
			 "environ refused\nmem refused\n");
	ck_assert_int_gt(init_pid, 2);
}
END_TEST

START_TEST(no_network)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	char script[1024];
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	/* a listener outside that the program must not reach */
	ck_assert_int_ge(ls, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(ls, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(ls, 8), 0);
	ck_assert_int_eq(getsockname(ls, (struct sockaddr *)&sin, &len), 0);
	snprintf(script, sizeof(script),
		 "import socket, errno\n"
		 "print([l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]])\n"
		 "s = socket.socket()\n"
		 "s.settimeout(3)\n"
		 "try:\n"
		 "    s.connect(('127.0.0.1', %d))\n"
		 "    print('connected')\n"
		 "except OSError as e:\n"
		 "    print('refused')\n"
		 "try:\n"
		 "    socket.create_connection(('192.0.2.1', 80), timeout=2)\n"
		 "    print('connected')\n"
		 "except OSError as e:\n"
		 "    print(errno.errorcode.get(e.errno, e.errno))\n",
		 ntohs(sin.sin_port));
	run_py_ok(script);
	ck_assert_str_eq(out, "['lo']\nrefused\nENETUNREACH\n");
	close(ls);
}
END_TEST

START_TEST(network_kept_when_configured)
{
	struct if_nameindex *ifs = if_nameindex();
	char want[32];
	int n = 0;

	/* (if_nameindex needs a netlink socket: refused inside) */
	ck_assert_ptr_nonnull(ifs);
	while (ifs[n].if_index != 0)
		n++;
	if_freenameindex(ifs);
	/* the host must have more than lo for this test to mean anything */
	ck_assert_int_ge(n, 2);
	cfg.network = 1;
	run_py_ok("import socket\n"
		  "print(len(open('/proc/net/dev').readlines()) - 2)\n"
		  "print(socket.gethostname())\n");
	snprintf(want, sizeof(want), "%d\npyexec\n", n);
	ck_assert_str_eq(out, want);
}
END_TEST

START_TEST(capabilities_no_new_privs_seccomp)
{
	run_py_ok("for line in open('/proc/self/status'):\n"
		  "    k, v = line.split(':', 1)\n"
		  "    if k in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs', 'Seccomp'):\n"
		  "        print(k, v.strip())\n");
	ck_assert_str_eq(out,
			 "CapInh 0000000000000000\n"
			 "CapPrm 0000000000000000\n"
			 "CapEff 0000000000000000\n"
			 "CapBnd 0000000000000000\n"
			 "CapAmb 0000000000000000\n"
			 "NoNewPrivs 1\n"
			 "Seccomp 2\n");
}
END_TEST

#if defined(__x86_64__)
START_TEST(refused_system_calls)
{
	/* x86-64 numbers. Each call would succeed, or fail otherwise, without
	 * the filter (shmget, ptrace(TRACEME) and unshare(CLONE_NEWUSER) do
	 * succeed unprivileged). */
	run_py_ok("import ctypes, errno, os\n"
		  "libc = ctypes.CDLL(None, use_errno=True)\n"
		  "libc.syscall.restype = ctypes.c_long\n"
		  "buf = ctypes.create_string_buffer(256)\n"
		  "calls = [('ptrace', 101, 0, 0, 0), ('process_vm_readv', 310, 1, 0, 0),\n"
		  "  ('mount', 165, b'none', b'/tmp', b'tmpfs'), ('umount2', 166, b'/tmp', 2, 0),\n"
		  "  ('unshare', 272, 0x10000000, 0, 0), ('setns', 308, 0, 0, 0),\n"
		  "  ('bpf', 321, 0, buf, 64), ('perf_event_open', 298, buf, 0, -1),\n"
		  "  ('userfaultfd', 323, 0, 0, 0), ('io_uring_setup', 425, 1, buf, 0),\n"
		  "  ('keyctl', 250, 0, -3, 1), ('add_key', 248, b'user', b'x', buf),\n"
		  "  ('shmget', 29, 0, 4096, 0o1600), ('msgget', 68, 0, 0o1600, 0),\n"
		  "  ('semget', 64, 0, 1, 0o1600), ('chroot', 161, b'/tmp', 0, 0),\n"
		  "  ('pivot_root', 155, b'/tmp', b'/tmp', 0), ('open_tree', 428, -100, b'/', 1),\n"
		  "  ('fsopen', 430, b'tmpfs', 0, 0), ('kcmp', 312, os.getpid(), os.getpid(), 0),\n"
		  "  ('clone_newuser', 56, 0x10000000 | 17, 0, 0), ('clone_newns', 56, 0x00020000 | 17, 0, 0),\n"
		  "  ('clone3', 435, buf, 88, 0), ('ioctl_tiocsti', 16, 0, 0x5412, buf),\n"
		  "  ('ioctl_tiocsti_high', 16, 0, 0x100005412, buf), ('ioctl_tioclinux', 16, 0, 0x541C, buf)]\n"
		  "for name, nr, a, b, c in calls:\n"
		  "    r = libc.syscall(nr, a, b, c, 0, 0)\n"
		  "    print(name, 'ok' if r >= 0 else errno.errorcode[ctypes.get_errno()])\n"
		  "print('getpid', 'ok' if libc.syscall(39) == os.getpid() else 'bad')\n");
	ck_assert_str_eq(out,
			 "ptrace EPERM\nprocess_vm_readv EPERM\nmount EPERM\numount2 EPERM\n"
			 "unshare EPERM\nsetns EPERM\nbpf EPERM\nperf_event_open EPERM\n"
			 "userfaultfd EPERM\nio_uring_setup EPERM\nkeyctl EPERM\nadd_key EPERM\n"
			 "shmget EPERM\nmsgget EPERM\nsemget EPERM\nchroot EPERM\n"
			 "pivot_root EPERM\nopen_tree EPERM\nfsopen EPERM\nkcmp EPERM\n"
			 "clone_newuser EPERM\nclone_newns EPERM\nclone3 ENOSYS\n"
			 "ioctl_tiocsti EPERM\nioctl_tiocsti_high EPERM\nioctl_tioclinux EPERM\n"
			 "getpid ok\n");
}
END_TEST

START_TEST(x32_system_call_is_killed)
{
	/* getpid through the x32 ABI (nr | 0x40000000) */
	ck_assert_int_eq(run_py("import ctypes\n"
				"print('before', flush=True)\n"
				"ctypes.CDLL(None).syscall(0x40000000 | 39)\n"
				"print('after')\n"), 0);
	ck_assert_str_eq(out, "before\n");
	ck_assert_int_eq(res.signal, SIGSYS);
	ck_assert_int_eq(res.status, RUN_KILLED);
}
END_TEST

/* What the kernel does, outside any filter, with getpid through int 0x80:
 * 0 when it runs (IA32 emulation is there), else the signal that ends the
 * caller (SIGSEGV on a kernel built or booted without IA32 emulation). */
static int int80_outside_the_filter(void)
{
	static const unsigned char code[] = { 0xb8, 0x14, 0x00, 0x00, 0x00, 0xcd, 0x80, 0xc3 };
	int st;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (m == MAP_FAILED)
			_exit(3);
		/* the kernel's signal, not a sanitizer's report of it */
		(void)signal(SIGSEGV, SIG_DFL);
		memcpy(m, code, sizeof(code));
		((int (*)(void))m)();
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	if (WIFEXITED(st)) {
		ck_assert_int_eq(WEXITSTATUS(st), 0);
		return 0;
	}
	return WTERMSIG(st);
}

/* The filter kills an i386 system call (SIGSYS). Where the kernel has no
 * IA32 emulation the call never reaches the filter: int 0x80 is a general
 * protection fault, SIGSEGV, inside as outside. Either way it never runs. */
START_TEST(i386_int80_is_killed)
{
	int outside = int80_outside_the_filter();

	ck_assert_msg(outside == 0 || outside == SIGSEGV,
		      "int 0x80 outside the sandbox ended with signal %d", outside);
	/* mov eax, 20 (getpid on i386); int 0x80; ret */
	ck_assert_int_eq(run_py("import ctypes, mmap\n"
				"code = b'\\xb8\\x14\\x00\\x00\\x00\\xcd\\x80\\xc3'\n"
				"m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
				"m.write(code)\n"
				"addr = ctypes.addressof(ctypes.c_char.from_buffer(m))\n"
				"print('before', flush=True)\n"
				"ctypes.CFUNCTYPE(ctypes.c_int)(addr)()\n"
				"print('after')\n"), 0);
	ck_assert_str_eq(out, "before\n");
	ck_assert_int_eq(res.signal, outside == 0 ? SIGSYS : SIGSEGV);
}
END_TEST
#endif

#if defined(__x86_64__)
START_TEST(watching_ldt_and_personality_refused)
{
	/* x86-64 numbers. Without the filter each of these works (or, for
	 * memfd_secret on a kernel booted without it, fails with ENOSYS). */
	run_py_ok("import ctypes, errno\n"
		  "libc = ctypes.CDLL(None, use_errno=True)\n"
		  "libc.syscall.restype = ctypes.c_long\n"
		  "buf = ctypes.create_string_buffer(64)\n"
		  "def sc(nr, *a):\n"
		  "    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(x) for x in a])\n"
		  "    return hex(r) if r >= 0 else errno.errorcode[ctypes.get_errno()]\n"
		  "print('inotify_init', sc(253))\n"
		  "print('inotify_init1', sc(294, 0))\n"
		  "print('fanotify_init', sc(300, 0, 0))\n"
		  "print('modify_ldt', sc(154, 0, ctypes.addressof(buf), 64))\n"
		  "print('memfd_secret', sc(447, 0))\n"
		  "print('personality query', sc(135, 0xffffffff))\n"
		  "print('personality query high bits', sc(135, 0x7fffffffffffffff))\n"
		  "print('personality PER_LINUX', sc(135, 0))\n"
		  "for p in (0x0040000, 0x0400000, 0x0008, 0x80000000, 0x1, 0xfffffffe,\n"
		  "          0x100040000):\n"
		  "    print('personality', hex(p), sc(135, p))\n"
		  "print('persona now', sc(135, 0xffffffff))\n");
	ck_assert_str_eq(out,
			 "inotify_init EPERM\ninotify_init1 EPERM\nfanotify_init EPERM\n"
			 "modify_ldt EPERM\nmemfd_secret EPERM\n"
			 "personality query 0x0\npersonality query high bits 0x0\n"
			 "personality PER_LINUX 0x0\n"
			 "personality 0x40000 EPERM\npersonality 0x400000 EPERM\n"
			 "personality 0x8 EPERM\npersonality 0x80000000 EPERM\n"
			 "personality 0x1 EPERM\npersonality 0xfffffffe EPERM\n"
			 "personality 0x100040000 EPERM\npersona now 0x0\n");
}
END_TEST
#endif

/* memfd_create: refused (ENOSYS) unless the runs have a memory cgroup. */
START_TEST(memfd_refused_without_memory_cgroup)
{
	const char *prog = "import os\n"
			   "try:\n"
			   "    fd = os.memfd_create('x')\n"
			   "    os.write(fd, b'x' * 4096)\n"
			   "    print('memfd', os.fstat(fd).st_size)\n"
			   "except OSError as e:\n"
			   "    print('memfd', e.strerror)\n";

	/* and back: each sandbox loads the filter of its configuration */
	static const int memory_cgroup[] = { 0, 1, 0 };

	for (size_t i = 0; i < sizeof(memory_cgroup) / sizeof(memory_cgroup[0]); i++) {
		cfg.memory_cgroup = memory_cgroup[i];
		sandbox_run_close(&run);
		sandbox_run_init(&run, &cfg, req_dir, up_fd, NULL, snap);
		ck_assert_int_eq(ftruncate(out_fd, 0), 0);
		ck_assert_int_eq(lseek(out_fd, 0, SEEK_SET), 0);
		run_py_ok(prog);
		ck_assert_str_eq(out, memory_cgroup[i] ? "memfd 4096\n"
						       : "memfd Function not implemented\n");
	}
}
END_TEST

START_TEST(socket_families)
{
	run_py_ok("import socket, errno\n"
		  "for name, fam, typ in [('unix', socket.AF_UNIX, socket.SOCK_STREAM),\n"
		  "                       ('inet', socket.AF_INET, socket.SOCK_DGRAM),\n"
		  "                       ('inet6', socket.AF_INET6, socket.SOCK_DGRAM),\n"
		  "                       ('packet', 17, socket.SOCK_RAW),\n"
		  "                       ('netlink', 16, socket.SOCK_RAW),\n"
		  "                       ('vsock', 40, socket.SOCK_STREAM),\n"
		  "                       ('unspec', 0, socket.SOCK_STREAM)]:\n"
		  "    try:\n"
		  "        socket.socket(fam, typ).close()\n"
		  "        print(name, 'ok')\n"
		  "    except OSError as e:\n"
		  "        print(name, errno.errorcode[e.errno])\n");
	ck_assert_str_eq(out, "unix ok\ninet ok\ninet6 ok\npacket EAFNOSUPPORT\n"
			 "netlink EAFNOSUPPORT\nvsock EAFNOSUPPORT\nunspec EAFNOSUPPORT\n");
}
END_TEST

static void check_read_only(void)
{
	run_py_ok("import errno, os\n"
		  "def w(path, mode='w'):\n"
		  "    try:\n"
		  "        open(path, mode).write('x')\n"
		  "        return 'written'\n"
		  "    except OSError as e:\n"
		  "        return errno.errorcode[e.errno]\n"
		  "for p in ('/usr/x', '/etc/passwd', '/etc/x', '/x', '/dev/x', '/bin/x',\n"
		  "          '/proc/sys/kernel/hostname', '/usr/bin/env'):\n"
		  "    print(p, w(p, 'a' if os.path.exists(p) else 'w'))\n"
		  "print(sorted(os.listdir('/')))\n"
		  "print(sorted(os.listdir('/dev')))\n");
	ck_assert_str_eq(out,
			 "/usr/x EROFS\n/etc/passwd EROFS\n/etc/x EROFS\n/x EROFS\n/dev/x EROFS\n"
			 "/bin/x EROFS\n/proc/sys/kernel/hostname EROFS\n/usr/bin/env EROFS\n"
			 "['bin', 'dev', 'etc', 'lib', 'lib32', 'lib64', 'proc', 'sbin', 'tmp', "
			 "'usr', 'work']\n"
			 "['fd', 'full', 'null', 'random', 'shm', 'stderr', 'stdin', 'stdout', "
			 "'urandom', 'zero']\n");
}

START_TEST(system_is_read_only)
{
	check_read_only();
}
END_TEST

START_TEST(system_is_read_only_before_linux_5_12)
{
	sandbox_test_old_kernel = 1;
	check_read_only();
	sandbox_test_old_kernel = 0;
}
END_TEST

START_TEST(devices_work)
{
	run_py_ok("import os\n"
		  "open('/dev/null', 'w').write('gone')\n"
		  "print(sorted(os.listdir('/proc/self/fd')))\n"
		  "print(len(open('/dev/zero', 'rb').read(10)), len(os.urandom(8)))\n"
		  "try:\n"
		  "    os.write(os.open('/dev/full', os.O_WRONLY), b'x')\n"
		  "except OSError as e:\n"
		  "    print(e.errno == 28)\n"
		  "import subprocess\n"
		  "print(subprocess.run(['/bin/sh', '-c', 'echo sh works'], capture_output=True).stdout.decode(), end='')\n");
	ck_assert_str_eq(out, "['0', '1', '2', '3']\n10 8\nTrue\nsh works\n");
}
END_TEST

/* A dependency entry made now is bound read-only at its own path, and
 * nothing else of the host's shows. */
static void check_deps_entry_is_bound(void)
{
	char script[1024];
	int fd;

	ck_assert_int_eq(mkdir(deps_dir, 0755), 0);
	fd = openat(tmp_fd, "deps/mod.py", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "VALUE = 'from deps'\n", 20), 20);
	close(fd);
	run.deps_path = deps_dir;
	snprintf(script, sizeof(script),
		 "import sys, errno, os\n"
		 "sys.path.insert(0, '%s')\n"
		 "import mod\n"
		 "print(mod.VALUE)\n"
		 "try:\n"
		 "    open('%s/mod.py', 'a').write('x')\n"
		 "except OSError as e:\n"
		 "    print(errno.errorcode[e.errno])\n"
		 "print(os.listdir('%s/..'), os.path.exists('/.host'))\n",
		 deps_dir, deps_dir, deps_dir);
	run_py_ok(script);
	ck_assert_str_eq(out, "from deps\nEROFS\n['deps'] False\n");
}

START_TEST(deps_are_visible_read_only)
{
	check_deps_entry_is_bound();
}
END_TEST

/* sandbox_etc's entries join the mirrored /etc; matplotlib's matplotlibrc
 * is there by default when the host has one. */
START_TEST(etc_extra_entries_are_mirrored)
{
	char script[512], want[256];
	int rc_on_host = access("/etc/matplotlibrc", R_OK) == 0;

	ck_assert_int_eq(sandbox_list_add(cfg.etc_extra, "/etc/nsswitch.conf"), 0);
	ck_assert_int_eq(sandbox_list_add(cfg.etc_extra, "/etc/pyexec-no-such-entry"), 0);
	snprintf(script, sizeof(script),
		 "import os\n"
		 "print(os.path.exists('/etc/nsswitch.conf') == %d,\n"
		 "      os.path.exists('/etc/pyexec-no-such-entry'),\n"
		 "      os.path.exists('/etc/matplotlibrc') == %d)\n",
		 access("/etc/nsswitch.conf", R_OK) == 0, rc_on_host);
	run_py_ok(script);
	snprintf(want, sizeof(want), "True False True\n");
	ck_assert_str_eq(out, want);
}
END_TEST

START_TEST(list_add_refuses_what_does_not_fit)
{
	char path[1000];
	int added = 0;

	ck_assert_int_eq(sandbox_list_add(cfg.hide, "relative"), -1);
	ck_assert_int_eq(errno, EINVAL);
	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	while (sandbox_list_add(cfg.hide, path) == 0)
		added++;
	ck_assert_int_eq(errno, ENAMETOOLONG);
	ck_assert_int_eq(added, SANDBOX_LIST_MAX / sizeof(path));
}
END_TEST

/* pyexec's own paths under a bind of the system: a directory is an empty
 * read-only tmpfs, a file reads empty, /usr/local/etc is empty; paths no
 * bind shows, and the binds' roots, are left alone. */
START_TEST(own_paths_are_masked)
{
	ck_assert_int_eq(sandbox_list_add(cfg.hide, "/usr/share/doc"), 0);
	ck_assert_int_eq(sandbox_list_add(cfg.hide, "/usr/lib/os-release"), 0);
	ck_assert_int_eq(sandbox_list_add(cfg.hide, "/usr"), 0);
	ck_assert_int_eq(sandbox_list_add(cfg.hide, "/usr/share/pyexec-no-such-dir"), 0);
	ck_assert_int_eq(sandbox_list_add(cfg.hide, tmpdir), 0);
	/* a link (Debian's python3 -> python3.11) is left alone: a mount on it
	 * would land on its target */
	ck_assert_int_eq(sandbox_list_add(cfg.hide, PY), 0);
	run_py_ok("import errno, os\n"
		  "def attempt(f):\n"
		  "    try:\n"
		  "        f()\n"
		  "        return 'ok'\n"
		  "    except OSError as e:\n"
		  "        return errno.errorcode[e.errno]\n"
		  "print(os.listdir('/usr/share/doc'))\n"
		  "print(repr(open('/usr/lib/os-release').read()))\n"
		  "print(os.listdir('/usr/local/etc') if os.path.isdir('/usr/local/etc') else [])\n"
		  "print(attempt(lambda: open('/usr/share/doc/x', 'w')))\n"
		  "print(attempt(lambda: open('/usr/lib/os-release', 'w')))\n"
		  "print(os.path.isdir('/usr/bin'), os.path.exists('/usr/share/pyexec-no-such-dir'))\n");
	ck_assert_str_eq(out, "[]\n''\n[]\nEROFS\nEROFS\nTrue False\n");
}
END_TEST

/* A dependency entry below a masked directory (deps_cache under a bind)
 * is bound there all the same, and the mask is read-only after it. */
START_TEST(deps_entry_below_a_mask)
{
	char cache[] = "/usr/local/share/pyexec-check-sandbox.XXXXXX", entry[128], script[1024];
	int fd;

	if (getuid() != 0) {
		fprintf(stderr, "# deps_entry_below_a_mask: not root, cannot write under /usr\n");
		return;
	}
	(void)mkdir("/usr/local/share", 0755);
	ck_assert_ptr_nonnull(mkdtemp(cache));
	ck_assert_int_eq(chmod(cache, 0755), 0);
	snprintf(entry, sizeof(entry), "%s/entry", cache);
	ck_assert_int_eq(mkdir(entry, 0755), 0);
	snprintf(script, sizeof(script), "%s/entry/mod.py", cache);
	fd = open(script, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "VALUE = 'below the mask'\n", 25), 25);
	close(fd);
	snprintf(script, sizeof(script), "%s/other", cache);
	ck_assert_int_eq(mkdir(script, 0755), 0);
	ck_assert_int_eq(sandbox_list_add(cfg.hide, cache), 0);
	run.deps_path = entry;
	snprintf(script, sizeof(script),
		 "import sys, errno, os\n"
		 "sys.path.insert(0, '%s')\n"
		 "import mod\n"
		 "print(mod.VALUE, os.listdir('%s'))\n"
		 "try:\n"
		 "    os.mkdir('%s/new')\n"
		 "except OSError as e:\n"
		 "    print(errno.errorcode[e.errno])\n",
		 entry, cache, cache);
	run_py_ok(script);
	ck_assert_str_eq(out, "below the mask ['entry']\nEROFS\n");
	snprintf(script, sizeof(script), "%s/other", cache);
	ck_assert_int_eq(rmdir(script), 0);
	snprintf(script, sizeof(script), "%s/mod.py", entry);
	ck_assert_int_eq(unlink(script), 0);
	ck_assert_int_eq(rmdir(entry), 0);
	ck_assert_int_eq(rmdir(cache), 0);
}
END_TEST

START_TEST(disk_full_is_the_programs_enospc)
{
	struct stat st;

	cfg.disk_bytes = MIB;
	run_py_ok("import errno\n"
		  "try:\n"
		  "    with open('/work/big', 'wb') as f:\n"
		  "        f.write(b'x' * (2 * 1024 * 1024))\n"
		  "    print('written')\n"
		  "except OSError as e:\n"
		  "    print(errno.errorcode[e.errno])\n");
	ck_assert_str_eq(out, "ENOSPC\n");
	/* what was written is in the sandbox's tmpfs, never on the host */
	ck_assert_int_eq(fstatat(run.work_fd, "big", &st, AT_SYMLINK_NOFOLLOW), 0);
	ck_assert_int_le(st.st_size, MIB);
	ck_assert_int_eq(faccessat(up_fd, "big", F_OK, AT_SYMLINK_NOFOLLOW), -1);
}
END_TEST

START_TEST(tmp_and_shm_share_the_disk)
{
	cfg.disk_bytes = MIB;
	run_py_ok("import errno\n"
		  "def w(path, n):\n"
		  "    try:\n"
		  "        with open(path, 'wb') as f:\n"
		  "            f.write(b'x' * n)\n"
		  "        return 'ok'\n"
		  "    except OSError as e:\n"
		  "        return errno.errorcode[e.errno]\n"
		  "print(w('/tmp/a', 600 * 1024))\n"
		  "print(w('/dev/shm/b', 600 * 1024))\n"
		  "print(w('/work/c', 600 * 1024))\n");
	ck_assert_str_eq(out, "ok\nENOSPC\nENOSPC\n");
}
END_TEST

START_TEST(many_files_end_in_enospc)
{
	cfg.disk_bytes = MIB;
	run_py_ok("import errno, os\n"
		  "n = 0\n"
		  "try:\n"
		  "    while n < 100000:\n"
		  "        open('/tmp/f%d' % n, 'w').close()\n"
		  "        n += 1\n"
		  "except OSError as e:\n"
		  "    print(errno.errorcode[e.errno], n < 5000)\n");
	ck_assert_str_eq(out, "ENOSPC True\n");
}
END_TEST

START_TEST(work_is_noexec)
{
	run_py_ok("import shutil, os, errno\n"
		  "shutil.copy('/bin/true', '/work/t')\n"
		  "os.chmod('/work/t', 0o755)\n"
		  "try:\n"
		  "    os.execv('/work/t', ['t'])\n"
		  "except OSError as e:\n"
		  "    print(errno.errorcode[e.errno])\n");
	ck_assert_str_eq(out, "EACCES\n");
}
END_TEST

START_TEST(daemon_is_dead_after_the_run)
{
	char marker[64], script[1024];

	snprintf(marker, sizeof(marker), "check-sandbox-daemon-%ld", (long)getpid());
	snprintf(script, sizeof(script),
		 "import os, sys, time\n"
		 "if os.fork() == 0:\n"
		 "    os.setsid()\n"
		 "    if os.fork() == 0:\n"
		 "        os.execv('/usr/bin/python3', ['python3', '-c', 'import time; time.sleep(100)', '%s'])\n"
		 "    os._exit(0)\n"
		 "time.sleep(0.5)\n"
		 "print('parent exits')\n", marker);
	run_py_ok(script);
	ck_assert_str_eq(out, "parent exits\n");
	ck_assert_int_eq(kill(init_pid, 0), -1);
	ck_assert_int_eq(errno, ESRCH);
	ck_assert_int_eq(process_with_marker(marker), 0);
}
END_TEST

START_TEST(exit_code_is_reported)
{
	ck_assert_int_eq(run_py("import sys; sys.exit(7)"), 0);
	ck_assert_int_eq(res.status, RUN_ERROR);
	ck_assert_int_eq(res.exit_code, 7);
	ck_assert_int_eq(res.signal, 0);
}
END_TEST

START_TEST(signal_death_is_reported)
{
	ck_assert_int_eq(run_py("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"), 0);
	ck_assert_int_eq(res.status, RUN_KILLED);
	ck_assert_int_eq(res.exit_code, -1);
	ck_assert_int_eq(res.signal, SIGSEGV);
}
END_TEST

START_TEST(wall_timeout_kills_everything)
{
	char marker[64], script[512];

	snprintf(marker, sizeof(marker), "check-sandbox-sleeper-%ld", (long)getpid());
	snprintf(script, sizeof(script),
		 "import subprocess, time\n"
		 "subprocess.Popen(['/usr/bin/python3', '-c', 'import time; time.sleep(100)', '%s'])\n"
		 "print('sleeping', flush=True)\n"
		 "time.sleep(100)\n", marker);
	spec.lim.wall_ms = 1000;
	ck_assert_int_eq(run_py(script), 0);
	ck_assert_int_eq(res.status, RUN_TIMEOUT);
	ck_assert_str_eq(out, "sleeping\n");
	ck_assert_int_eq(kill(init_pid, 0), -1);
	ck_assert_int_eq(process_with_marker(marker), 0);
}
END_TEST

START_TEST(stdin_and_environment)
{
	char *envp[] = { "PATH=/usr/bin:/bin", "ONLY=this", NULL };
	int fd = openat(tmp_fd, "req/stdin", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "input line\n", 11), 11);
	spec.stdin_fd = fd;
	spec.envp = envp;
	run_py_ok("import os, sys\n"
		  "print(os.readlink('/proc/self/fd/0')[:6])\n"
		  "print(sys.stdin.read(), end='')\n"
		  "print(sorted(k for k in os.environ if k != 'LC_CTYPE'))\n");
	/* a pipe: nothing of the host's file, its path or the worker's pid */
	ck_assert_str_eq(out, "pipe:[\ninput line\n['ONLY', 'PATH']\n");
	close(fd);
}
END_TEST

START_TEST(no_proc_when_refused)
{
	cfg.proc = 0;
	run_py_ok("import os\n"
		  "print(os.listdir('/proc'))\n"
		  "print(open('/etc/passwd').read().count('\\n'))\n");
	ck_assert_str_eq(out, "[]\n1\n");
}
END_TEST

START_TEST(setup_failure_is_reported)
{
	run.deps_path = "/nonexistent/check-sandbox-deps";
	ck_assert_int_eq(run_py("print('never')"), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_msg(strstr(run.error, "/nonexistent/check-sandbox-deps") != NULL &&
		      strstr(run.error, "No such file or directory") != NULL,
		      "error: %s", run.error);
	ck_assert_int_eq(run.work_fd, -1);
	ck_assert_str_eq(out, "");
	/* init was killed and reaped */
	ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
	ck_assert_int_eq(errno, ECHILD);
}
END_TEST

START_TEST(run_cannot_be_started_twice)
{
	run_py_ok("pass");
	run.status_fd = -1;
	ck_assert_int_ge(run.work_fd, 0);
	ck_assert_int_eq(run_py("pass"), -1);
	ck_assert_int_eq(errno, EBUSY);
}
END_TEST

/* cfg's python_dirs, joined by ',' */
static const char *python_dirs(const struct sandbox_config *c)
{
	static char buf[SANDBOX_LIST_MAX];
	size_t n = 0;

	buf[0] = '\0';
	for (const char *p = sandbox_list_next(c->python_dirs, NULL); p != NULL;
	     p = sandbox_list_next(c->python_dirs, p))
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", n > 0 ? "," : "", p);
	return buf;
}

START_TEST(probe_succeeds_and_fills_cfg)
{
	struct sandbox_config c = { .disk_bytes = 0 };
	char msg[512] = "untouched";
	DIR *d;
	struct dirent *de;
	int entries = 0;

	memset(&c, 0xff, sizeof(c));
	/* the caller's part, kept by the probe */
	c.memory_cgroup = 0;
	c.etc_extra[0] = c.hide[0] = c.figures_dir[0] = '\0';
	ck_assert_msg(sandbox_probe(&c, PY, 4 * MIB, 0, tmpdir, msg, sizeof(msg)) == 0,
		      "probe: %s", msg);
	ck_assert_str_eq(msg, "");
	ck_assert_str_eq(python_dirs(&c), "");
	ck_assert_int_eq(c.disk_bytes, 4 * MIB);
	ck_assert_int_eq(c.network, 0);
	ck_assert_int_eq(c.proc, 1);
	ck_assert_int_eq(c.uid, getuid());
	ck_assert_int_eq(c.gid, getgid());
	/* nothing left behind but the fixture's own req */
	d = opendir(tmpdir);
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			entries++;
	closedir(d);
	ck_assert_int_eq(entries, 1);
}
END_TEST

START_TEST(probe_binds_a_venv_and_a_prefix_outside_usr)
{
	struct sandbox_config c = { .disk_bytes = 0 };
	char msg[512], venv[128], py[256];

	/* a venv-like prefix under /tmp whose python links to the system's */
	snprintf(venv, sizeof(venv), "%s/venv", tmpdir);
	snprintf(py, sizeof(py), "%s/bin/python3", venv);
	ck_assert_int_eq(mkdir(venv, 0755), 0);
	ck_assert_int_eq(mkdirat(tmp_fd, "venv/bin", 0755), 0);
	ck_assert_int_eq(symlink(PY, py), 0);
	ck_assert_msg(sandbox_probe(&c, py, 4 * MIB, 0, tmpdir, msg, sizeof(msg)) == 0,
		      "probe: %s", msg);
	ck_assert_str_eq(python_dirs(&c), venv);

	/* a python of its own prefix (a copy of the system's binary: it finds
	 * its standard library in /usr all the same) */
	{
		char opt[128], bin[256];
		int in = open(PY, O_RDONLY | O_CLOEXEC), o;
		struct stat st;

		snprintf(opt, sizeof(opt), "%s/opt", tmpdir);
		snprintf(bin, sizeof(bin), "%s/bin/python3", opt);
		ck_assert_int_eq(mkdir(opt, 0755), 0);
		ck_assert_int_eq(mkdirat(tmp_fd, "opt/bin", 0755), 0);
		ck_assert_int_ge(in, 0);
		ck_assert_int_eq(fstat(in, &st), 0);
		o = open(bin, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
		ck_assert_int_ge(o, 0);
		ck_assert_int_eq(sendfile(o, in, NULL, (size_t)st.st_size), st.st_size);
		close(in);
		close(o);
		ck_assert_msg(sandbox_probe(&c, bin, 4 * MIB, 0, tmpdir, msg, sizeof(msg)) == 0,
			      "probe: %s", msg);
		ck_assert_str_eq(python_dirs(&c), opt);
		ck_assert_int_eq(workdir_rmtree_at(tmp_fd, "opt"), 0);
	}

	/* a dangling interpreter */
	ck_assert_int_eq(unlink(py), 0);
	ck_assert_int_eq(symlink("/nonexistent-python", py), 0);
	ck_assert_int_eq(sandbox_probe(&c, py, 4 * MIB, 0, tmpdir, msg, sizeof(msg)), -1);
	ck_assert_msg(strstr(msg, "cannot resolve") != NULL && strstr(msg, py) != NULL,
		      "probe: %s", msg);
}
END_TEST

/* More interpreters after the first: each one's prefixes are added once,
 * and one that does not run leaves the list as it was. */
START_TEST(probe_adds_more_pythons)
{
	struct sandbox_config c = { .disk_bytes = 0 };
	char msg[512], want[300], venv[2][128], py[2][160];

	ck_assert_msg(sandbox_probe(&c, PY, 4 * MIB, 0, tmpdir, msg, sizeof(msg)) == 0,
		      "probe: %s", msg);
	for (int i = 0; i < 2; i++) {
		snprintf(venv[i], sizeof(venv[i]), "%s/venv%d", tmpdir, i);
		snprintf(py[i], sizeof(py[i]), "%s/bin/python3", venv[i]);
		ck_assert_int_eq(mkdir(venv[i], 0755), 0);
		snprintf(want, sizeof(want), "%s/bin", venv[i]);
		ck_assert_int_eq(mkdir(want, 0755), 0);
		ck_assert_int_eq(symlink(PY, py[i]), 0);
		ck_assert_msg(sandbox_probe_python(&c, py[i], tmpdir, msg, sizeof(msg)) == 0,
			      "probe: %s", msg);
	}
	/* the same one again adds nothing */
	ck_assert_int_eq(sandbox_probe_python(&c, py[1], tmpdir, msg, sizeof(msg)), 0);
	snprintf(want, sizeof(want), "%s,%s", venv[0], venv[1]);
	ck_assert_str_eq(python_dirs(&c), want);
	ck_assert_int_eq(sandbox_probe_python(&c, "/bin/false", tmpdir, msg, sizeof(msg)), -1);
	ck_assert_msg(strstr(msg, "/bin/false did not run in the sandbox") != NULL, "probe: %s",
		      msg);
	ck_assert_str_eq(python_dirs(&c), want);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(unlink(py[i]), 0);
		snprintf(want, sizeof(want), "venv%d/bin", i);
		ck_assert_int_eq(unlinkat(tmp_fd, want, AT_REMOVEDIR), 0);
		snprintf(want, sizeof(want), "venv%d", i);
		ck_assert_int_eq(unlinkat(tmp_fd, want, AT_REMOVEDIR), 0);
	}
}
END_TEST

START_TEST(probe_reports_a_bad_python)
{
	struct sandbox_config c = { .disk_bytes = 0 };
	char msg[512];

	ck_assert_int_eq(sandbox_probe(&c, "/bin/false", 4 * MIB, 0, tmpdir, msg, sizeof(msg)), -1);
	ck_assert_msg(strstr(msg, "/bin/false did not run in the sandbox (exit 1") != NULL,
		      "probe: %s", msg);
	ck_assert_int_eq(sandbox_probe(&c, "relative/python", 4 * MIB, 0, tmpdir, msg,
				       sizeof(msg)), -1);
	ck_assert_msg(strstr(msg, "absolute") != NULL, "probe: %s", msg);
}
END_TEST

/* Runs fn in a forked child (which may change its credentials and
 * namespaces without harm to the suite): the test fails with what fn wrote
 * to its fd when it returns non-zero. */
static void in_child(int (*fn)(int why_fd))
{
	char why[2048] = "";
	int pfd[2], st;
	ssize_t n;
	pid_t pid;

	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(fn(pfd[1]) == 0 ? 0 : 1);
	close(pfd[1]);
	n = read(pfd[0], why, sizeof(why) - 1);
	why[n > 0 ? n : 0] = '\0';
	close(pfd[0]);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: %s", why);
}

/* Becomes nobody, as pyexec does when started as root, and probes into c. */
static int nobody_probe(int why, struct sandbox_config *c)
{
	char msg[512];

	memset(c, 0, sizeof(*c));

	if (setgroups(0, NULL) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
	    setresuid(NOBODY, NOBODY, NOBODY) < 0) {
		dprintf(why, "cannot become nobody: %s", strerror(errno));
		return -1;
	}
	/* like pyexec after it dropped root: not dumpable */
	if (prctl(PR_GET_DUMPABLE) != 0) {
		dprintf(why, "still dumpable after setresuid");
		return -1;
	}
	if (sandbox_probe(c, PY, 4 * MIB, 0, req_dir, msg, sizeof(msg)) < 0) {
		dprintf(why, "probe as nobody: %s", msg);
		return -1;
	}
	if (c->uid != NOBODY || c->gid != NOBODY || c->run_uid != NOBODY || c->run_gid != NOBODY) {
		dprintf(why, "probe: uid %lu gid %lu, run ids %lu %lu", (unsigned long)c->uid,
			(unsigned long)c->gid, (unsigned long)c->run_uid, (unsigned long)c->run_gid);
		return -1;
	}
	return 0;
}

/* 0 when name in /work holds want, else -1 with why told. */
static int work_file_is(int why, const char *name, const char *want)
{
	char got[512];

	read_work(name, got, sizeof(got));
	if (strcmp(got, want) == 0)
		return 0;
	dprintf(why, "%s: [%s], want [%s]", name, got, want);
	return -1;
}

static int as_nobody(int why)
{
	struct sandbox_config c;
	char want[64];

	if (nobody_probe(why, &c) < 0)
		return -1;
	cfg = c;
	sandbox_run_init(&run, &cfg, req_dir, up_fd, NULL, snap);
	if (run_py("import os\n"
		   "print(os.getuid(), os.getgid(), open('in.txt').read())\n"
		   "for line in open('/proc/self/status'):\n"
		   "    if line.startswith(('CapEff', 'Seccomp:')):\n"
		   "        print(line.split()[1])\n"
		   "open('out.txt', 'w').write('done')\n") < 0) {
		dprintf(why, "run as nobody: %s", run.error);
		return -1;
	}
	snprintf(want, sizeof(want), "%d %d upload\n0000000000000000\n2\n", NOBODY, NOBODY);
	if (strcmp(out, want) != 0) {
		dprintf(why, "output as nobody: [%s] stderr [%s]", out, err);
		return -1;
	}
	if (work_file_is(why, "out.txt", "done") < 0)
		return -1;
	sandbox_run_close(&run);
	return 0;
}

START_TEST(works_as_nobody)
{
	if (getuid() != 0) {
		/* every other test is the unprivileged case already */
		CHECK_SKIP("needs root, to run the sandbox as nobody");
		return;
	}
	/* a request directory nobody owns, like work_root's */
	ck_assert_int_eq(chmod(tmpdir, 0755), 0);
	ck_assert_int_eq(chown(req_dir, NOBODY, NOBODY), 0);
	ck_assert_int_eq(fchownat(tmp_fd, "req/work", NOBODY, NOBODY, 0), 0);
	write_upload("in.txt", "upload", 0644);
	in_child(as_nobody);
}
END_TEST

/* As nobody with a range of its own in /etc/subuid and /etc/subgid: the
 * program runs as the run ids, what it makes private comes back, and ids
 * outside the range are refused with newuidmap's word, cfg left as was. */
static unsigned long sub_uid, sub_gid;

static int as_nobody_with_run_ids(int why)
{
	struct sandbox_config c;
	char msg[512], want[64];

	if (nobody_probe(why, &c) < 0)
		return -1;
	if (sandbox_probe_run_ids(&c, PY, req_dir, 0x7ffffff0, 0x7ffffff0, msg, sizeof(msg)) == 0 ||
	    strstr(msg, "newuidmap") == NULL || c.run_uid != NOBODY || c.run_gid != NOBODY) {
		dprintf(why, "ids outside the range: [%s], run ids %lu %lu", msg,
			(unsigned long)c.run_uid, (unsigned long)c.run_gid);
		return -1;
	}
	if (sandbox_probe_run_ids(&c, PY, req_dir, (uid_t)sub_uid + 1, (gid_t)sub_gid + 1, msg,
				  sizeof(msg)) < 0) {
		dprintf(why, "probe with run ids: %s", msg);
		return -1;
	}
	cfg = c;
	sandbox_run_init(&run, &cfg, req_dir, up_fd, NULL, snap);
	if (run_py("import os\n"
		   "print(os.getuid(), os.getgid(), os.getgroups(), open('in.txt').read())\n"
		   "os.umask(0o077)\n"
		   "open('out.txt', 'w').write('done')\n"
		   "open('in.txt', 'a').write('+run')\n") < 0) {
		dprintf(why, "run with run ids: %s", run.error);
		return -1;
	}
	snprintf(want, sizeof(want), "%lu %lu [] upload\n", sub_uid + 1, sub_gid + 1);
	if (strcmp(out, want) != 0) {
		dprintf(why, "output: [%s] want [%s] stderr [%s]", out, want, err);
		return -1;
	}
	if (work_file_is(why, "out.txt", "done") < 0 || work_file_is(why, "in.txt", "upload+run") < 0)
		return -1;
	sandbox_run_close(&run);
	return 0;
}

START_TEST(works_with_run_ids_of_its_own)
{
	struct passwd *pw = getpwuid(NOBODY);

	if (getuid() != 0 || pw == NULL ||
	    subid_find(SUBID_UID_FILE, pw->pw_name, NOBODY, NOBODY, 2, &sub_uid) < 0 ||
	    subid_find(SUBID_GID_FILE, pw->pw_name, NOBODY, NOBODY, 2, &sub_gid) < 0 ||
	    access(SUBID_NEWUIDMAP, X_OK) < 0) {
		CHECK_SKIP("needs root, newuidmap, and a range of 2 ids for nobody in "
			   "/etc/subuid and /etc/subgid (./quickstart adds one)");
		return;
	}
	ck_assert_int_eq(chmod(tmpdir, 0755), 0);
	ck_assert_int_eq(chown(req_dir, NOBODY, NOBODY), 0);
	ck_assert_int_eq(fchownat(tmp_fd, "req/work", NOBODY, NOBODY, 0), 0);
	write_upload("in.txt", "upload", 0644);
	in_child(as_nobody_with_run_ids);
}
END_TEST

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	int rc = fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text) ? 0 : -1;

	if (fd >= 0)
		close(fd);
	return rc;
}

static int with_proc_covered(int why)
{
	struct sandbox_config c = { .disk_bytes = 0 };
	char map[64], msg[512];
	unsigned long uid = getuid(), gid = getgid();

	/* Something mounted over a part of /proc, by a namespace more
	 * privileged than the sandbox's: a fresh /proc would reveal what it
	 * covers, so the kernel refuses one (as in many containers). */
	if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0) {
		dprintf(why, "unshare: %s", strerror(errno));
		return -1;
	}
	snprintf(map, sizeof(map), "%lu %lu 1\n", uid, uid);
	if (write_file("/proc/self/setgroups", "deny") < 0 ||
	    write_file("/proc/self/uid_map", map) < 0) {
		dprintf(why, "uid_map: %s", strerror(errno));
		return -1;
	}
	snprintf(map, sizeof(map), "%lu %lu 1\n", gid, gid);
	if (write_file("/proc/self/gid_map", map) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", "/proc/sys", "tmpfs", 0, "size=4k") < 0) {
		dprintf(why, "cover /proc/sys: %s", strerror(errno));
		return -1;
	}
	if (sandbox_probe(&c, PY, 4 * MIB, 0, tmpdir, msg, sizeof(msg)) < 0) {
		dprintf(why, "probe: %s", msg);
		return -1;
	}
	if (c.proc != 0) {
		dprintf(why, "the probe mounted a fresh /proc all the same");
		return -1;
	}
	cfg = c;
	sandbox_run_init(&run, &cfg, req_dir, up_fd, NULL, snap);
	if (run_py("import os; print(os.listdir('/proc'))") < 0 || strcmp(out, "[]\n") != 0) {
		dprintf(why, "run without /proc: %s [%s] [%s]", run.error, out, err);
		return -1;
	}
	/* and with cfg.proc = 1 the run says which step failed */
	cfg.proc = 1;
	sandbox_run_close(&run);
	sandbox_run_init(&run, &cfg, req_dir, up_fd, NULL, snap);
	if (run_py("pass") == 0 || strstr(run.error, "cannot mount a fresh /proc") == NULL) {
		dprintf(why, "run with /proc: [%s]", run.error);
		return -1;
	}
	return 0;
}

START_TEST(probe_falls_back_to_no_proc)
{
	in_child(with_proc_covered);
}
END_TEST

/* Entries of tmpdir named like a spare's mount point. */
static int spare_dirs(void)
{
	struct dirent *de;
	DIR *d = opendir(tmpdir);
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL)
		n += strstr(de->d_name, "-sandbox.") != NULL;
	closedir(d);
	return n;
}

static int pid_alive(pid_t pid)
{
	return kill(pid, 0) == 0;
}

START_TEST(spare_serves_the_next_run)
{
	pid_t made;

	ck_assert_int_eq(sandbox_spare_make(&spare, &cfg, tmpdir, NULL), 0);
	made = spare.pid;
	ck_assert_int_gt(made, 0);
	/* Set up, it waits with nothing left on the host. */
	for (int i = 0; i < 500 && spare_dirs() > 0; i++)
		usleep(10000);
	ck_assert_int_eq(spare_dirs(), 0);
	run.spare = &spare;
	run_py_ok("import os, socket\n"
		  "print(os.getpid(), os.getppid(), socket.gethostname(), os.getcwd())\n"
		  "print([n for n in os.listdir('/') if n.startswith('.')])\n");
	ck_assert_int_eq(init_pid, made);
	/* nothing of the set-up shows: no host root, no disk mount point */
	ck_assert_str_eq(out, "2 1 pyexec /work\n[]\n");
	/* taken: the next run would make its own */
	ck_assert_int_eq(spare.pid, 0);
	ck_assert_int_eq(spare.sock, -1);
}
END_TEST

START_TEST(spare_is_kept_while_alive)
{
	pid_t made;

	ck_assert_int_eq(sandbox_spare_make(&spare, &cfg, tmpdir, NULL), 0);
	made = spare.pid;
	ck_assert_int_eq(sandbox_spare_make(&spare, &cfg, tmpdir, NULL), 0);
	ck_assert_int_eq(spare.pid, made);
	sandbox_spare_discard(&spare);
	ck_assert_int_eq(spare.pid, 0);
	ck_assert(!pid_alive(made));
	ck_assert_int_eq(spare_dirs(), 0);
}
END_TEST

/* A dependency entry installed after the spare was made (the cache fills
 * while workers wait) is bound all the same. */
START_TEST(spare_binds_a_later_dependency_entry)
{
	pid_t made;

	ck_assert_int_eq(sandbox_spare_make(&spare, &cfg, tmpdir, NULL), 0);
	made = spare.pid;
	usleep(50000);
	run.spare = &spare;
	check_deps_entry_is_bound();
	ck_assert_int_eq(init_pid, made);
}
END_TEST

/* Someone else killed and reaped it (run_program does that to every child
 * of a worker, around a pip install): the run makes its own. */
START_TEST(dead_spare_is_replaced)
{
	pid_t made;

	ck_assert_int_eq(sandbox_spare_make(&spare, &cfg, tmpdir, NULL), 0);
	made = spare.pid;
	ck_assert_int_eq(kill(made, SIGKILL), 0);
	ck_assert_int_eq(waitpid(made, NULL, __WALL), made);
	run.spare = &spare;
	run_py_ok("print('fresh')");
	ck_assert_int_ne(init_pid, made);
	ck_assert_str_eq(out, "fresh\n");
	ck_assert_int_eq(spare.pid, 0);
	ck_assert_int_eq(spare_dirs(), 0);
}
END_TEST

START_TEST(spare_for_another_configuration_is_not_used)
{
	struct sandbox_config other = cfg;
	pid_t made;

	ck_assert_int_eq(sandbox_spare_make(&spare, &other, tmpdir, NULL), 0);
	made = spare.pid;
	run.spare = &spare;
	run_py_ok("print('fresh')");
	ck_assert_int_ne(init_pid, made);
	ck_assert(!pid_alive(made));
	ck_assert_int_eq(spare.pid, 0);
	ck_assert_int_eq(spare_dirs(), 0);
}
END_TEST

/* It holds none of its maker's fds (a worker's listener, a client's
 * connection): closing ours ends the other side. */
START_TEST(spare_holds_no_fd_of_its_maker)
{
	struct pollfd pfd;
	int p[2];
	char c;

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(sandbox_spare_make(&spare, &cfg, tmpdir, NULL), 0);
	close(p[1]);
	pfd.fd = p[0];
	pfd.events = POLLIN;
	pfd.revents = 0;
	ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
	ck_assert_int_eq(read(p[0], &c, 1), 0);
	close(p[0]);
}
END_TEST

/* A spare whose setup fails: the run tries a sandbox of its own, and
 * reports what fails there. */
START_TEST(spare_setup_failure_is_reported_by_the_run)
{
	ck_assert_int_eq(sandbox_list_add(cfg.python_dirs, "/nonexistent/check-sandbox-prefix"), 0);
	ck_assert_int_eq(sandbox_spare_make(&spare, &cfg, tmpdir, NULL), 0);
	run.spare = &spare;
	ck_assert_int_eq(run_py("print('never')"), -1);
	ck_assert_msg(strstr(run.error, "/nonexistent/check-sandbox-prefix") != NULL,
		      "error: %s", run.error);
	ck_assert_str_eq(out, "");
	ck_assert_int_eq(spare.pid, 0);
	ck_assert_int_eq(spare_dirs(), 0);
}
END_TEST

static Suite *sandbox_suite(void)
{
	Suite *s = suite_create("sandbox");
	TCase *tc = tcase_create("sandbox");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, python_prints_hello);
	tcase_add_test(tc, cwd_is_work_and_files_land_in_work_fd);
	tcase_add_test(tc, uploads_are_copied_and_recorded);
	tcase_add_test(tc, changed_upload_is_a_result);
	tcase_add_test(tc, uploads_too_big_for_the_disk);
	tcase_add_test(tc, etc_passwd_is_one_line);
	tcase_add_test(tc, hostname_is_pyexec);
	tcase_add_test(tc, pid_1_is_init);
	tcase_add_test(tc, no_network);
	tcase_add_test(tc, network_kept_when_configured);
	tcase_add_test(tc, capabilities_no_new_privs_seccomp);
#if defined(__x86_64__)
	tcase_add_test(tc, refused_system_calls);
	tcase_add_test(tc, x32_system_call_is_killed);
	tcase_add_test(tc, i386_int80_is_killed);
	tcase_add_test(tc, watching_ldt_and_personality_refused);
#endif
	tcase_add_test(tc, memfd_refused_without_memory_cgroup);
	tcase_add_test(tc, socket_families);
	tcase_add_test(tc, system_is_read_only);
	tcase_add_test(tc, system_is_read_only_before_linux_5_12);
	tcase_add_test(tc, devices_work);
	tcase_add_test(tc, deps_are_visible_read_only);
	tcase_add_test(tc, etc_extra_entries_are_mirrored);
	tcase_add_test(tc, list_add_refuses_what_does_not_fit);
	tcase_add_test(tc, own_paths_are_masked);
	tcase_add_test(tc, deps_entry_below_a_mask);
	tcase_add_test(tc, disk_full_is_the_programs_enospc);
	tcase_add_test(tc, tmp_and_shm_share_the_disk);
	tcase_add_test(tc, many_files_end_in_enospc);
	tcase_add_test(tc, work_is_noexec);
	tcase_add_test(tc, daemon_is_dead_after_the_run);
	tcase_add_test(tc, exit_code_is_reported);
	tcase_add_test(tc, signal_death_is_reported);
	tcase_add_test(tc, wall_timeout_kills_everything);
	tcase_add_test(tc, stdin_and_environment);
	tcase_add_test(tc, no_proc_when_refused);
	tcase_add_test(tc, setup_failure_is_reported);
	tcase_add_test(tc, run_cannot_be_started_twice);
	tcase_add_test(tc, probe_succeeds_and_fills_cfg);
	tcase_add_test(tc, probe_binds_a_venv_and_a_prefix_outside_usr);
	tcase_add_test(tc, probe_reports_a_bad_python);
	tcase_add_test(tc, probe_adds_more_pythons);
	tcase_add_test(tc, probe_falls_back_to_no_proc);
	tcase_add_test(tc, works_as_nobody);
	tcase_add_test(tc, works_with_run_ids_of_its_own);
	tcase_add_test(tc, spare_serves_the_next_run);
	tcase_add_test(tc, spare_is_kept_while_alive);
	tcase_add_test(tc, spare_binds_a_later_dependency_entry);
	tcase_add_test(tc, dead_spare_is_replaced);
	tcase_add_test(tc, spare_for_another_configuration_is_not_used);
	tcase_add_test(tc, spare_holds_no_fd_of_its_maker);
	tcase_add_test(tc, spare_setup_failure_is_reported_by_the_run);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(sandbox_suite)
