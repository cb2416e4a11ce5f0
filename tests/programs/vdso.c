/*
 * The vDSO the kernel gives a process: found at getauxval(AT_SYSINFO_EHDR), its symbols
 * looked up by name and version LINUX_2.6 the way Go's runtime and musl do (program headers,
 * dynamic section, SysV and GNU hash tables, version definitions), and called: every clock
 * agrees with the system call both ways, monotonic clocks never go back, gettimeofday,
 * time, getcpu and clock_getres answer as their system calls, and bad pointers do what
 * Linux does (the vDSO writes the result itself: SIGSEGV; an unknown clock: EINVAL from
 * the system call it falls back to).
 *
 * vdso            all of the above; prints deterministic lines, then "done".
 * vdso quiet N    sleeps 300 ms, then makes N clock_gettime calls through libc and exits
 *                 (a --strace run then shows whether they trapped).
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures;

#define CHECK(cond, ...)                                                                   \
	do {                                                                               \
		if (!(cond)) {                                                             \
			printf("FAIL %s:%d: ", __FILE__, __LINE__);                        \
			printf(__VA_ARGS__);                                               \
			printf("\n");                                                      \
			failures++;                                                        \
		}                                                                          \
	} while (0)

/* The parsed vDSO, as Go's vdsoInfo. */
struct vdso {
	uintptr_t load_offset;
	const Elf64_Sym *symtab;
	const char *strings;
	const Elf64_Word *hash;      /* DT_HASH */
	const Elf64_Word *gnu_hash;  /* DT_GNU_HASH */
	const Elf64_Versym *versym;
	const Elf64_Verdef *verdef;
};

static uint32_t elf_hash(const char *name)
{
	uint32_t h = 0;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		h = (h << 4) + *p;
		uint32_t g = h & 0xf0000000;
		if (g)
			h ^= g >> 24;
		h &= ~g;
	}
	return h;
}

static uint32_t gnu_hash(const char *name)
{
	uint32_t h = 5381;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = h * 33 + *p;
	return h;
}

static int parse(struct vdso *v, uintptr_t base)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)base;
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS64)
		return -1;
	const Elf64_Phdr *ph = (const Elf64_Phdr *)(base + eh->e_phoff);
	const Elf64_Dyn *dyn = NULL;
	int found_load = 0;
	for (int i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type == PT_LOAD && !found_load) {
			found_load = 1;
			v->load_offset = base + ph[i].p_offset - ph[i].p_vaddr;
		} else if (ph[i].p_type == PT_DYNAMIC) {
			dyn = (const Elf64_Dyn *)(base + ph[i].p_offset);
		}
	}
	if (!found_load || !dyn)
		return -1;
	for (; dyn->d_tag != DT_NULL; dyn++) {
		uintptr_t p = v->load_offset + dyn->d_un.d_ptr;
		switch (dyn->d_tag) {
		case DT_STRTAB: v->strings = (const char *)p; break;
		case DT_SYMTAB: v->symtab = (const Elf64_Sym *)p; break;
		case DT_HASH: v->hash = (const Elf64_Word *)p; break;
		case DT_GNU_HASH: v->gnu_hash = (const Elf64_Word *)p; break;
		case DT_VERSYM: v->versym = (const Elf64_Versym *)p; break;
		case DT_VERDEF: v->verdef = (const Elf64_Verdef *)p; break;
		}
	}
	return v->strings && v->symtab && (v->hash || v->gnu_hash) && v->versym && v->verdef
		       ? 0
		       : -1;
}

/* Whether symbol `i` has version `version` (Go's vdsoInfo.findVersion/match). */
static int has_version(const struct vdso *v, uint32_t i, const char *version)
{
	uint16_t want = v->versym[i] & 0x7fff;
	const Elf64_Verdef *d = v->verdef;
	for (;;) {
		if (!(d->vd_flags & VER_FLG_BASE) && d->vd_ndx == want) {
			const Elf64_Verdaux *aux = (const Elf64_Verdaux *)((const char *)d + d->vd_aux);
			return d->vd_hash == elf_hash(version) &&
			       !strcmp(v->strings + aux->vda_name, version);
		}
		if (!d->vd_next)
			return 0;
		d = (const Elf64_Verdef *)((const char *)d + d->vd_next);
	}
}

static void *found(const struct vdso *v, uint32_t i, const char *name, const char *version)
{
	const Elf64_Sym *s = &v->symtab[i];
	int type = ELF64_ST_TYPE(s->st_info), bind = ELF64_ST_BIND(s->st_info);
	if (type != STT_FUNC || (bind != STB_GLOBAL && bind != STB_WEAK) ||
	    s->st_shndx == SHN_UNDEF || strcmp(v->strings + s->st_name, name) ||
	    !has_version(v, i, version))
		return NULL;
	return (void *)(v->load_offset + s->st_value);
}

/* SysV hash lookup (musl, older Go). */
static void *lookup_sysv(const struct vdso *v, const char *name, const char *version)
{
	if (!v->hash)
		return NULL;
	uint32_t nbucket = v->hash[0];
	const Elf64_Word *bucket = &v->hash[2], *chain = &v->hash[2 + nbucket];
	for (uint32_t i = bucket[elf_hash(name) % nbucket]; i; i = chain[i]) {
		void *p = found(v, i, name, version);
		if (p)
			return p;
	}
	return NULL;
}

/* GNU hash lookup (glibc, Go). */
static void *lookup_gnu(const struct vdso *v, const char *name, const char *version)
{
	if (!v->gnu_hash)
		return NULL;
	uint32_t nbucket = v->gnu_hash[0], symbias = v->gnu_hash[1], bloom = v->gnu_hash[2];
	const Elf64_Word *bucket = v->gnu_hash + 4 + bloom * 2;
	const Elf64_Word *chain = bucket + nbucket - symbias;
	uint32_t h = gnu_hash(name);
	for (uint32_t i = bucket[h % nbucket]; i; i++) {
		if ((chain[i] | 1) == (h | 1)) {
			void *p = found(v, i, name, version);
			if (p)
				return p;
		}
		if (chain[i] & 1)
			break;
	}
	return NULL;
}

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);
typedef int (*gettimeofday_fn)(struct timeval *, struct timezone *);
typedef time_t (*time_fn)(time_t *);
typedef long (*getcpu_fn)(unsigned *, unsigned *, void *);
typedef int (*clock_getres_fn)(clockid_t, struct timespec *);

static clock_gettime_fn vdso_clock_gettime;
static gettimeofday_fn vdso_gettimeofday;
static time_fn vdso_time;
static getcpu_fn vdso_getcpu;
static clock_getres_fn vdso_clock_getres;

static int64_t ns(struct timespec ts)
{
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t sys_now(clockid_t c)
{
	struct timespec ts;
	syscall(SYS_clock_gettime, c, &ts);
	return ns(ts);
}

static int64_t vdso_now(clockid_t c)
{
	struct timespec ts;
	vdso_clock_gettime(c, &ts);
	return ns(ts);
}

static const struct {
	clockid_t id;
	const char *name;
	int monotonic;
	/* How far a reading may lie outside the system calls around it (coarse clocks tick). */
	int64_t slack;
} clocks[] = {
	{CLOCK_REALTIME, "CLOCK_REALTIME", 0, 1000000},
	{CLOCK_MONOTONIC, "CLOCK_MONOTONIC", 1, 1000000},
	{CLOCK_MONOTONIC_RAW, "CLOCK_MONOTONIC_RAW", 1, 1000000},
	{CLOCK_REALTIME_COARSE, "CLOCK_REALTIME_COARSE", 0, 20000000},
	{CLOCK_MONOTONIC_COARSE, "CLOCK_MONOTONIC_COARSE", 1, 20000000},
	{CLOCK_BOOTTIME, "CLOCK_BOOTTIME", 1, 1000000},
};

static void check_clock(int k)
{
	clockid_t c = clocks[k].id;
	int64_t prev = 0;
	for (int i = 0; i < 200000; i++) {
		int64_t t = vdso_now(c);
		if (clocks[k].monotonic)
			CHECK(t >= prev, "%s went back: %lld after %lld", clocks[k].name,
			      (long long)t, (long long)prev);
		prev = t;
	}
	for (int i = 0; i < 1000; i++) {
		int64_t before = sys_now(c), t = vdso_now(c), after = sys_now(c);
		if (t < before - clocks[k].slack || t > after + clocks[k].slack) {
			CHECK(0, "%s: vDSO %lld outside system calls [%lld, %lld]", clocks[k].name,
			      (long long)t, (long long)before, (long long)after);
			break;
		}
	}
	/* The rate: 100 ms by the vDSO is 100 ms by the system call. */
	int64_t s0 = sys_now(c), v0 = vdso_now(c);
	usleep(100000);
	int64_t v1 = vdso_now(c), s1 = sys_now(c);
	int64_t dv = v1 - v0, ds = s1 - s0;
	CHECK(dv > 0 && llabs(dv - ds) < 2 * clocks[k].slack + 1000000,
	      "%s: 100 ms took %lld ns by the vDSO, %lld by the system call", clocks[k].name,
	      (long long)dv, (long long)ds);
	printf("%s: agrees with the system call\n", clocks[k].name);
}

/* Runs `f` in a child and returns the signal that killed it (0: it exited). */
static int child_signal(void (*f)(void))
{
	pid_t pid = fork();
	if (pid == 0) {
		f();
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

static void bad_clock_gettime(void)
{
	vdso_clock_gettime(CLOCK_MONOTONIC, (struct timespec *)8);
}

static void bad_gettimeofday(void)
{
	vdso_gettimeofday((struct timeval *)8, NULL);
}

static void bad_time(void)
{
	vdso_time((time_t *)8);
}

/* [vvar]'s first address, from /proc/self/maps, after checking both mappings' lines. */
static uintptr_t vvar_start;

static void check_maps(uintptr_t base)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int vvar = 0, vdso = 0;
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long start, end;
		char perms[5];
		if (sscanf(line, "%lx-%lx %4s", &start, &end, perms) != 3)
			continue;
		if (strstr(line, " [vvar]\n") && !vvar) {
			vvar = 1;
			vvar_start = start;
			CHECK(!strcmp(perms, "r--p"), "[vvar] is %s", perms);
		} else if (strstr(line, " [vdso]\n")) {
			vdso = 1;
			CHECK(start == base && !strcmp(perms, "r-xp"), "[vdso] at %lx is %s", start,
			      perms);
		}
	}
	if (f)
		fclose(f);
	CHECK(vvar && vdso, "maps: [vvar] %d, [vdso] %d", vvar, vdso);
	printf("maps: [vvar] r--p, [vdso] r-xp at AT_SYSINFO_EHDR\n");
}

static void write_vvar(void)
{
	*(volatile char *)vvar_start = 1;
}

static void forked_clock(void)
{
	struct timespec ts;
	if (vdso_clock_gettime(CLOCK_MONOTONIC, &ts) || ts.tv_sec <= 0)
		abort();
}

static int quiet(int n)
{
	usleep(300000);
	struct timespec ts;
	int64_t prev = 0;
	for (int i = 0; i < n; i++) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		if (ns(ts) < prev)
			return 1;
		prev = ns(ts);
	}
	printf("quiet: %d calls\n", n);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc == 3 && !strcmp(argv[1], "quiet"))
		return quiet(atoi(argv[2]));

	uintptr_t base = getauxval(AT_SYSINFO_EHDR);
	if (!base) {
		printf("no AT_SYSINFO_EHDR\n");
		return 1;
	}
	struct vdso v = {0};
	if (parse(&v, base)) {
		printf("the vDSO does not parse as Go's runtime parses it\n");
		return 1;
	}
	printf("AT_SYSINFO_EHDR: an ELF object with symbols, hashes and versions\n");

	static const char *names[] = {"__vdso_clock_gettime", "__vdso_gettimeofday", "__vdso_time",
				      "__vdso_getcpu", "__vdso_clock_getres"};
	void *fns[5];
	for (int i = 0; i < 5; i++) {
		void *a = lookup_sysv(&v, names[i], "LINUX_2.6");
		void *b = lookup_gnu(&v, names[i], "LINUX_2.6");
		CHECK(a || b, "%s@LINUX_2.6 not found", names[i]);
		CHECK(!a || !b || a == b, "%s: the two hash tables disagree", names[i]);
		CHECK(!lookup_sysv(&v, names[i], "LINUX_9.9") && !lookup_gnu(&v, names[i], "LINUX_9.9"),
		      "%s found under a version it does not have", names[i]);
		fns[i] = a ? a : b;
		printf("%s@LINUX_2.6: found\n", names[i]);
	}
	if (failures)
		return 1;
	vdso_clock_gettime = (clock_gettime_fn)fns[0];
	vdso_gettimeofday = (gettimeofday_fn)fns[1];
	vdso_time = (time_fn)fns[2];
	vdso_getcpu = (getcpu_fn)fns[3];
	vdso_clock_getres = (clock_getres_fn)fns[4];

	check_maps(base);
	CHECK(mprotect((void *)vvar_start, 4096, PROT_READ | PROT_WRITE) == -1 && errno == EACCES,
	      "mprotect([vvar], PROT_WRITE): not EACCES");
	CHECK(child_signal(write_vvar) == SIGSEGV, "a store to [vvar] did not SIGSEGV");
	printf("[vvar]: read-only\n");
	CHECK(child_signal(forked_clock) == 0, "a fork child's vDSO failed");
	printf("fork: the child's vDSO works\n");

	for (unsigned k = 0; k < sizeof(clocks) / sizeof(clocks[0]); k++)
		check_clock(k);

	for (unsigned k = 0; k < sizeof(clocks) / sizeof(clocks[0]); k++) {
		struct timespec a = {-1, -1}, b = {-2, -2};
		int ra = vdso_clock_getres(clocks[k].id, &a);
		int rb = syscall(SYS_clock_getres, clocks[k].id, &b);
		CHECK(ra == rb && a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec,
		      "clock_getres(%s): vDSO %d %ld.%09ld, system call %d %ld.%09ld",
		      clocks[k].name, ra, a.tv_sec, a.tv_nsec, rb, b.tv_sec, b.tv_nsec);
	}
	printf("clock_getres: agrees with the system call\n");

	struct timeval tv, stv;
	struct timezone tz = {-1, -1};
	syscall(SYS_gettimeofday, &stv, NULL);
	CHECK(vdso_gettimeofday(&tv, &tz) == 0, "gettimeofday failed");
	int64_t dt = (tv.tv_sec - stv.tv_sec) * 1000000 + (tv.tv_usec - stv.tv_usec);
	CHECK(dt >= -1000 && dt < 1000000, "gettimeofday %lld us from the system call",
	      (long long)dt);
	CHECK(vdso_gettimeofday(NULL, NULL) == 0, "gettimeofday(NULL, NULL) failed");
	printf("gettimeofday: agrees with the system call\n");

	time_t before = syscall(SYS_time, NULL), t2 = 0;
	time_t t1 = vdso_time(&t2);
	time_t after = syscall(SYS_time, NULL);
	CHECK(t1 == t2 && t1 >= before && t1 <= after, "time %ld (%ld) not in [%ld, %ld]",
	      (long)t1, (long)t2, (long)before, (long)after);
	CHECK(vdso_time(NULL) >= t1, "time(NULL) went back");
	printf("time: agrees with the system call\n");

	/* On one CPU, getcpu has one answer. */
	cpu_set_t set;
	CHECK(sched_getaffinity(0, sizeof(set), &set) == 0, "sched_getaffinity");
	int first = 0;
	while (first < CPU_SETSIZE && !CPU_ISSET(first, &set))
		first++;
	CPU_ZERO(&set);
	CPU_SET(first, &set);
	CHECK(sched_setaffinity(0, sizeof(set), &set) == 0, "sched_setaffinity");
	unsigned cpu = 99, node = 99, scpu = 98, snode = 98;
	CHECK(vdso_getcpu(&cpu, &node, NULL) == 0, "getcpu failed");
	syscall(SYS_getcpu, &scpu, &snode, NULL);
	CHECK(cpu == scpu && node == snode, "getcpu: vDSO %u/%u, system call %u/%u", cpu, node,
	      scpu, snode);
	CHECK(vdso_getcpu(NULL, NULL, NULL) == 0, "getcpu(NULL, NULL) failed");
	printf("getcpu: agrees with the system call\n");

	/* The vDSO stores the result itself: a bad pointer faults in the caller. */
	CHECK(child_signal(bad_clock_gettime) == SIGSEGV, "clock_gettime(bad) did not SIGSEGV");
	CHECK(child_signal(bad_gettimeofday) == SIGSEGV, "gettimeofday(bad) did not SIGSEGV");
	CHECK(child_signal(bad_time) == SIGSEGV, "time(bad) did not SIGSEGV");
	printf("bad pointers: SIGSEGV\n");
	/* An unknown clock is the system call's: EINVAL (the raw call returns -errno). */
	struct timespec ts;
	CHECK(vdso_clock_gettime(12345, &ts) == -EINVAL, "unknown clock: not -EINVAL");
	printf("unknown clock: -EINVAL\n");

	if (failures) {
		printf("%d failures\n", failures);
		return 1;
	}
	printf("done\n");
	return 0;
}
