/* The sandbox zygote's C part (see harness/_sandbox_child.py, which loads this module): its job
 * loop (serve, below), the runner's limits (set_limits), the builtins' version tag
 * (dict_version) and the few system calls of its set-up that the os module lacks (unshare,
 * mount, mount_setattr, prctl, capset_none, address_space_limit). Without it (no C compiler)
 * the zygote does all of that in Python, with ctypes.
 *
 * Why C: the zygote forks one runner per program, and after every fork each page the zygote
 * writes costs it a copy-on-write page fault. A Python loop touches many pages per job (object
 * reference counts, frames, the allocator's pools); this loop touches a few (its stack and one
 * buffer; docs/sandbox.md has the measurements). It is used only when the zygote is PID 1 of its own PID namespace, where
 * ``kill(-1, SIGKILL)`` reaches exactly the processes a program started.
 *
 * serve(sock, result_w, out_w, err_w, own_out, own_err, high_fd, workdir, program_path) lends
 * the caller's result/stdout/stderr pipes (write ends) to each runner on high_fd, 1 and 2 and
 * serves jobs until:
 *   - the caller closes the socket: returns None (in the zygote);
 *   - a runner was forked: returns (program: bytes, job: bytes) in that runner, which runs it
 *     and must never return into the loop (it ends with os._exit);
 *   - the program's directory is not empty and as made after a job: returns the job's raw wait
 *     status (an int; -1 when the caller had the runner killed) before that status was sent, so
 *     Python can empty the directory and send the reply itself (or stop serving).
 * Raises OSError for a failed system call, ValueError for a malformed job header.
 *
 * Job message (caller to zygote): 'J', then the program's length and the job JSON's length as
 * 4-byte big-endian numbers, then the program (UTF-8), then the job JSON. A 'K' asks to kill the running
 * job (a 'K' that comes after its job has ended is skipped). Reply after each job:
 * {"exit": raw_wait_status | null}\n.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sched.h>
#include <linux/capability.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

#define HEADER_BYTES 9

static char *buffer = NULL; /* program + job JSON of the current job (kept between jobs) */
static size_t buffer_size = 0;

static int fail(void) {
    PyErr_SetFromErrno(PyExc_OSError);
    return -1;
}

static int read_exact(int fd, char *out, size_t n) {
    while (n > 0) {
        ssize_t got = read(fd, out, n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return got == 0 ? 0 : fail();
        out += got;
        n -= (size_t)got;
    }
    return 1;
}

static int write_all(int fd, const char *data, size_t n) {
    while (n > 0) {
        ssize_t put = write(fd, data, n);
        if (put < 0 && errno == EINTR)
            continue;
        if (put < 0)
            return fail();
        data += put;
        n -= (size_t)put;
    }
    return 0;
}

static uint32_t be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Next job: its header and body (into `buffer`). 1: got one; 0: EOF; -1: error (set). */
static int recv_job(int sock, uint32_t *program_len, uint32_t *job_len) {
    unsigned char header[HEADER_BYTES];
    size_t have = 0;
    while (have < HEADER_BYTES) {
        ssize_t got = recv(sock, header + have, HEADER_BYTES - have, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return fail();
        if (got == 0)
            return 0;
        size_t end = have + (size_t)got, k = 0;
        if (have == 0) { /* kills that came after their job had ended */
            while (k < end && header[k] == 'K')
                k++;
            memmove(header, header + k, end - k);
        }
        have = end - k;
    }
    if (header[0] != 'J') {
        PyErr_Format(PyExc_ValueError, "malformed job header (kind %d)", header[0]);
        return -1;
    }
    *program_len = be32(header + 1);
    *job_len = be32(header + 5);
    size_t need = (size_t)*program_len + *job_len;
    if (need > buffer_size) {
        char *bigger = realloc(buffer, need);
        if (bigger == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        buffer = bigger;
        buffer_size = need;
    }
    return read_exact(sock, buffer, need);
}

static int write_program(const char *path, const char *text, size_t n) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return fail();
    int rc = write_all(fd, text, n);
    close(fd);
    return rc;
}

/* As PID 1 of the namespace: kill and reap every other process. */
static void reap_all(void) {
    for (;;) {
        kill(-1, SIGKILL);
        if (waitpid(-1, NULL, 0) == -1 && errno == ECHILD)
            return;
    }
}

/* Wait for the runner to end, killing it when the caller asks. Its raw status, -1 when it was
 * killed on request; the zygote exits when the caller is gone. */
static int watch(int sock, pid_t pid) {
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0)
        return -2;
    int killed = 0, status = 0;
    struct pollfd fds[2] = {{sock, POLLIN, 0}, {pidfd, POLLIN, 0}};
    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (fds[1].revents) {
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            break;
        }
        if (fds[0].revents) {
            char c;
            ssize_t got = recv(sock, &c, 1, 0);
            if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) {
                kill(pid, SIGKILL); /* the caller is gone: end everything */
                reap_all();
                _exit(0);
            }
            if (got == 1 && !killed) {
                killed = 1;
                kill(pid, SIGKILL);
            }
        }
    }
    close(pidfd);
    return killed ? -1 : status;
}

/* The directory holds nothing and has its mode: the common case after a job. */
static int directory_clean(const char *workdir, const char *program_path) {
    if (unlink(program_path) != 0)
        return 0;
    int fd = open(workdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct stat st;
    int clean = fstat(fd, &st) == 0 && (st.st_mode & 07777) == 0755;
    DIR *dir = clean ? fdopendir(fd) : NULL;
    if (dir == NULL) {
        close(fd);
        return 0;
    }
    struct dirent *entry;
    while (clean && (entry = readdir(dir)) != NULL) {
        if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0)
            clean = 0;
    }
    closedir(dir);
    return clean;
}

static int send_exit(int sock, int status) {
    char reply[48];
    int n = status == -1 ? snprintf(reply, sizeof reply, "{\"exit\": null}\n")
                         : snprintf(reply, sizeof reply, "{\"exit\": %d}\n", status);
    return write_all(sock, reply, (size_t)n); /* (SIGPIPE is ignored in a Python process) */
}

static PyObject *serve(PyObject *self, PyObject *args) {
    int sock, result_w, out_w, err_w, own_out, own_err, high_fd;
    const char *workdir, *program_path;
    (void)self;
    if (!PyArg_ParseTuple(args, "iiiiiiiyy", &sock, &result_w, &out_w, &err_w, &own_out,
                          &own_err, &high_fd, &workdir, &program_path))
        return NULL;
    for (;;) {
        uint32_t program_len, job_len;
        int got = recv_job(sock, &program_len, &job_len);
        if (got < 0)
            return NULL;
        if (got == 0)
            Py_RETURN_NONE;
        if (write_program(program_path, buffer, program_len) < 0)
            return NULL;
        /* The runner's descriptors are put in place before the fork (cheaper here than in
         * every runner); the zygote's own stdout/stderr are put back right after it. */
        if (dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0 || dup2(result_w, high_fd) < 0)
            return PyErr_SetFromErrno(PyExc_OSError);
        PyOS_BeforeFork();
        pid_t pid = fork();
        if (pid == 0) {
            PyOS_AfterFork_Child();
            return Py_BuildValue("(y#y#)", buffer, (Py_ssize_t)program_len,
                                 buffer + program_len, (Py_ssize_t)job_len);
        }
        int fork_errno = errno;
        PyOS_AfterFork_Parent();
        dup2(own_out, 1);
        dup2(own_err, 2);
        close(high_fd);
        if (pid < 0) {
            errno = fork_errno;
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        int status = watch(sock, pid);
        if (status == -2) /* no pidfd (kernel < 5.3): plain wait; a kill waits for the end */
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        reap_all();
        if (!directory_clean(workdir, program_path))
            return PyLong_FromLong(status);
        if (send_exit(sock, status) < 0)
            return NULL;
    }
}

/* set_limits(memory_bytes, cpu_s): the runner's resource limits, as the Python fallback
 * (_set_limits) sets them through the resource module: address space memory_bytes (none when
 * 0), no core files, CPU time cpu_s seconds (soft; SIGKILL one second later). */
static PyObject *set_limits(PyObject *self, PyObject *args) {
    long long memory, cpu;
    struct rlimit limit;
    (void)self;
    if (!PyArg_ParseTuple(args, "LL", &memory, &cpu))
        return NULL;
    if (memory < 0 || cpu < 0) {
        PyErr_SetString(PyExc_ValueError, "limits must be >= 0");
        return NULL;
    }
    limit.rlim_cur = limit.rlim_max = (rlim_t)memory;
    if (memory > 0 && setrlimit(RLIMIT_AS, &limit) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    limit.rlim_cur = limit.rlim_max = 0;
    if (setrlimit(RLIMIT_CORE, &limit) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    limit.rlim_cur = (rlim_t)cpu;
    limit.rlim_max = (rlim_t)cpu + 1;
    if (setrlimit(RLIMIT_CPU, &limit) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

#if PY_VERSION_HEX < 0x030C0000
/* dict_version(d): d's version tag (PEP 509; a new value after every change of d), read
 * without touching d's keys or values. CPython < 3.12 only (deprecated there, then gone). */
static PyObject *dict_version(PyObject *self, PyObject *d) {
    (void)self;
    if (!PyDict_Check(d)) {
        PyErr_SetString(PyExc_TypeError, "dict_version() needs a dict");
        return NULL;
    }
    return PyLong_FromUnsignedLongLong(((PyDictObject *)d)->ma_version_tag);
}
#endif

/* System calls the os module lacks, for the zygote's one-time set-up (with this extension the
 * zygote needs no ctypes, whose libraries would add ~15 memory regions to every fork and exit).
 * Each raises OSError on failure. */

static PyObject *sys_unshare(PyObject *self, PyObject *args) {
    int flags;
    (void)self;
    if (!PyArg_ParseTuple(args, "i", &flags))
        return NULL;
    if (unshare(flags) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *sys_mount(PyObject *self, PyObject *args) {
    const char *source, *target, *fstype, *data;
    unsigned long flags;
    (void)self;
    if (!PyArg_ParseTuple(args, "zszkz", &source, &target, &fstype, &flags, &data))
        return NULL;
    if (mount(source, target, fstype, flags, data) < 0)
        return PyErr_SetFromErrnoWithFilename(PyExc_OSError, target);
    Py_RETURN_NONE;
}

#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

struct sandbox_mount_attr { /* struct mount_attr of <linux/mount.h> (Linux >= 5.12) */
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};

static PyObject *sys_mount_setattr(PyObject *self, PyObject *args) {
    const char *path;
    unsigned long long attr_set, attr_clr;
    int recursive;
    (void)self;
    if (!PyArg_ParseTuple(args, "sKKp", &path, &attr_set, &attr_clr, &recursive))
        return NULL;
    struct sandbox_mount_attr attr = {attr_set, attr_clr, 0, 0};
    if (syscall(SYS_mount_setattr, AT_FDCWD, path, recursive ? AT_RECURSIVE : 0, &attr,
                sizeof attr) < 0)
        return PyErr_SetFromErrnoWithFilename(PyExc_OSError, path);
    Py_RETURN_NONE;
}

static PyObject *sys_prctl(PyObject *self, PyObject *args) {
    int option;
    unsigned long arg;
    (void)self;
    if (!PyArg_ParseTuple(args, "ik", &option, &arg))
        return NULL;
    int rc = prctl(option, arg, 0UL, 0UL, 0UL);
    if (rc < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(rc);
}

static PyObject *sys_capset_none(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &header, data) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *sys_address_space_limit(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    struct rlimit limit;
    if (getrlimit(RLIMIT_AS, &limit) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    if (limit.rlim_max == RLIM_INFINITY)
        return PyLong_FromLong(-1);
    return PyLong_FromUnsignedLongLong((unsigned long long)limit.rlim_max);
}

static PyMethodDef methods[] = {
    {"unshare", sys_unshare, METH_VARARGS, "unshare(flags): unshare(2)."},
    {"mount", sys_mount, METH_VARARGS,
     "mount(source, target, fstype, flags, data): mount(2); source, fstype, data may be None."},
    {"mount_setattr", sys_mount_setattr, METH_VARARGS,
     "mount_setattr(path, attr_set, attr_clr, recursive): mount_setattr(2) (Linux >= 5.12)."},
    {"prctl", sys_prctl, METH_VARARGS, "prctl(option, arg): prctl(2) with one argument."},
    {"capset_none", sys_capset_none, METH_NOARGS,
     "capset_none(): clear this process's effective, permitted and inheritable capabilities."},
    {"address_space_limit", sys_address_space_limit, METH_NOARGS,
     "address_space_limit(): the hard RLIMIT_AS in bytes, -1 when unlimited."},
    {"set_limits", set_limits, METH_VARARGS,
     "set_limits(memory_bytes, cpu_s): the runner's RLIMIT_AS (none when 0), RLIMIT_CORE (0) "
     "and RLIMIT_CPU (cpu_s soft, cpu_s + 1 hard)."},
#if PY_VERSION_HEX < 0x030C0000
    {"dict_version", dict_version, METH_O,
     "dict_version(d): the dict's version tag (PEP 509), which changes with every change of d."},
#endif
    {"serve", serve, METH_VARARGS,
     "serve(sock, result_w, out_w, err_w, own_out, own_err, high_fd, workdir, program_path): "
     "the zygote's job loop "
     "(see the module's source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "harness._zygote",
    "The sandbox zygote's C part: job loop, runner limits, system calls (see the source).", -1,
    methods};

PyMODINIT_FUNC PyInit__zygote(void) { return PyModule_Create(&module); }
