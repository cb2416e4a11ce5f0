/*
 * The vDSO runsc-rs maps into every application address space: clock_gettime,
 * gettimeofday, time, getcpu and clock_getres without a trap into the sentry.
 *
 * Time is computed from the parameter page ([vvar], one page below this object) that the
 * sentry keeps current (sentry/src/vdso/clock.rs writes it; the layout below must match
 * its `layout` constants):
 *
 *   ns = base_ns[clock] + ((tsc - tsc_base) * mult) >> shift
 *
 * under a sequence counter: odd while the sentry writes, readers retry. When the page says
 * the parameters are not ready (no usable TSC, calibration not finished) or a clock has no
 * base, the function makes the real system call, which the platform traps as any other.
 *
 * Freestanding: no libc, no data or bss, no relocations (the vDSO is never relocated by
 * the dynamic loader), and little stack (Go calls it on small system stacks).
 */

typedef unsigned long u64;
typedef long s64;

/* Must match sentry/src/vdso/clock.rs (`layout`). */
#define CLOCKS 8
struct vvar {
	u64 seq;
	u64 ready;
	u64 tsc_base;
	u64 mult;
	u64 shift;
	u64 base_ns[CLOCKS];
};

/* Placed by vdso.lds one page below the object's first byte. */
extern const volatile struct vvar vvar_page __attribute__((visibility("hidden")));

struct kernel_timespec {
	s64 tv_sec;
	s64 tv_nsec;
};

struct kernel_timeval {
	s64 tv_sec;
	s64 tv_usec;
};

struct kernel_timezone {
	int tz_minuteswest;
	int tz_dsttime;
};

#define SYS_gettimeofday 96
#define SYS_time 201
#define SYS_clock_gettime 228
#define SYS_clock_getres 229
#define SYS_getcpu 309

#define CLOCK_REALTIME 0
#define CLOCK_MONOTONIC 1
#define CLOCK_MONOTONIC_RAW 4
#define CLOCK_REALTIME_COARSE 5
#define CLOCK_MONOTONIC_COARSE 6
#define CLOCK_BOOTTIME 7

#define NSEC_PER_SEC 1000000000UL

/* A reader gives up on a page the sentry keeps odd (it never should) and traps. */
#define MAX_TRIES 1000

static inline long syscall3(long nr, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return ret;
}

/* rdtsc after every earlier load, before every later one (Linux's rdtsc_ordered). */
static inline u64 rdtsc_ordered(void)
{
	unsigned int lo, hi;
	__asm__ volatile("lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi) : : "memory");
	return ((u64)hi << 32) | lo;
}

/* Reads `clock` in nanoseconds from the parameter page; 0 when the page cannot answer. */
static u64 vvar_nanos(int clock)
{
	if (clock < 0 || clock >= CLOCKS)
		return 0;
	for (int i = 0; i < MAX_TRIES; i++) {
		u64 seq = vvar_page.seq;
		if (seq & 1) {
			__asm__ volatile("pause");
			continue;
		}
		__asm__ volatile("" ::: "memory");
		u64 ready = vvar_page.ready;
		u64 base = vvar_page.base_ns[clock];
		u64 tsc_base = vvar_page.tsc_base;
		u64 mult = vvar_page.mult;
		u64 shift = vvar_page.shift;
		u64 tsc = rdtsc_ordered();
		if (vvar_page.seq != seq)
			continue;
		if (!ready || !base)
			return 0;
		/* A TSC read just behind the base (another CPU) counts as the base. */
		u64 delta = (s64)(tsc - tsc_base) > 0 ? tsc - tsc_base : 0;
		return base + (u64)(((unsigned __int128)delta * mult) >> shift);
	}
	return 0;
}

int __vdso_clock_gettime(int clock, struct kernel_timespec *ts)
{
	u64 ns = vvar_nanos(clock);
	if (!ns)
		return syscall3(SYS_clock_gettime, clock, (long)ts, 0);
	ts->tv_sec = ns / NSEC_PER_SEC;
	ts->tv_nsec = ns % NSEC_PER_SEC;
	return 0;
}

int __vdso_gettimeofday(struct kernel_timeval *tv, struct kernel_timezone *tz)
{
	u64 ns = vvar_nanos(CLOCK_REALTIME);
	if (!ns)
		return syscall3(SYS_gettimeofday, (long)tv, (long)tz, 0);
	if (tv) {
		tv->tv_sec = ns / NSEC_PER_SEC;
		tv->tv_usec = ns % NSEC_PER_SEC / 1000;
	}
	if (tz) {
		tz->tz_minuteswest = 0;
		tz->tz_dsttime = 0;
	}
	return 0;
}

s64 __vdso_time(s64 *t)
{
	u64 ns = vvar_nanos(CLOCK_REALTIME);
	if (!ns)
		return syscall3(SYS_time, (long)t, 0, 0);
	s64 sec = ns / NSEC_PER_SEC;
	if (t)
		*t = sec;
	return sec;
}

/* The CPU the sandbox reports depends on the calling task's affinity: the sentry answers. */
long __vdso_getcpu(unsigned *cpu, unsigned *node, void *cache)
{
	return syscall3(SYS_getcpu, (long)cpu, (long)node, (long)cache);
}

int __vdso_clock_getres(int clock, struct kernel_timespec *res)
{
	long nsec;
	switch (clock) {
	case CLOCK_REALTIME:
	case CLOCK_MONOTONIC:
	case CLOCK_MONOTONIC_RAW:
	case CLOCK_BOOTTIME:
		nsec = 1;
		break;
	case CLOCK_REALTIME_COARSE:
	case CLOCK_MONOTONIC_COARSE:
		nsec = 4000000;
		break;
	default:
		return syscall3(SYS_clock_getres, clock, (long)res, 0);
	}
	if (res) {
		res->tv_sec = 0;
		res->tv_nsec = nsec;
	}
	return 0;
}

int clock_gettime(int, struct kernel_timespec *)
	__attribute__((weak, alias("__vdso_clock_gettime")));
int gettimeofday(struct kernel_timeval *, struct kernel_timezone *)
	__attribute__((weak, alias("__vdso_gettimeofday")));
s64 time(s64 *) __attribute__((weak, alias("__vdso_time")));
long getcpu(unsigned *, unsigned *, void *) __attribute__((weak, alias("__vdso_getcpu")));
int clock_getres(int, struct kernel_timespec *)
	__attribute__((weak, alias("__vdso_clock_getres")));
