// Signal frames as Linux builds them on x86-64: the alternate stack (SS_ONSTACK,
// SS_AUTODISARM, EPERM while on it, nesting), the red zone, frame alignment, the FP state
// (magic numbers, sizes, AT_MINSIGSTKSZ) and rt_sigreturn of a frame the handler changed
// (registers, FP registers, mask, uc_stack). Prints facts relative to known addresses, so
// the output is the same natively and in the sandbox.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef AT_MINSIGSTKSZ
#define AT_MINSIGSTKSZ 51
#endif
#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31)
#endif

#define ALT_SIZE (256 * 1024)
static char *alt;
static char *alt2;

struct seen {
    uintptr_t uc, info, fpstate, rsp_at_signal, handler_sp;
    int ss_flags_uc, ss_flags_now, set_errno, set_ret;
    uint32_t magic1, ext_size, xstate_size, magic2;
    uint64_t xfeatures, uc_flags;
};
static struct seen seen[4];
static int depth;

static void record(struct seen *s, siginfo_t *info, ucontext_t *uc) {
    char local;
    s->uc = (uintptr_t)uc;
    s->info = (uintptr_t)info;
    s->fpstate = (uintptr_t)uc->uc_mcontext.fpregs;
    s->rsp_at_signal = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    s->handler_sp = (uintptr_t)&local;
    s->ss_flags_uc = uc->uc_stack.ss_flags;
    s->uc_flags = uc->uc_flags;
    stack_t now;
    sigaltstack(NULL, &now);
    s->ss_flags_now = now.ss_flags;
    stack_t again = {.ss_sp = alt, .ss_size = ALT_SIZE, .ss_flags = 0};
    errno = 0;
    s->set_ret = sigaltstack(&again, NULL);
    s->set_errno = errno;
    const uint8_t *fx = (const uint8_t *)uc->uc_mcontext.fpregs;
    memcpy(&s->magic1, fx + 464, 4);
    memcpy(&s->ext_size, fx + 468, 4);
    memcpy(&s->xfeatures, fx + 472, 8);
    memcpy(&s->xstate_size, fx + 480, 4);
    if (s->magic1 == 0x46505853)
        memcpy(&s->magic2, fx + s->xstate_size, 4);
}

static void nested_handler(int sig, siginfo_t *info, void *ctx) {
    (void)sig;
    record(&seen[depth++], info, ctx);
}

static void handler(int sig, siginfo_t *info, void *ctx) {
    (void)sig;
    int me = depth++;
    record(&seen[me], info, ctx);
    if (me == 0)
        raise(SIGUSR2);
}

static void install(int sig, void (*h)(int, siginfo_t *, void *), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = h;
    sa.sa_flags = SA_SIGINFO | flags;
    sigaction(sig, &sa, NULL);
}

static void print_seen(const char *what, struct seen *s, uintptr_t top) {
    printf("%s: uc_aligned16=%d uc_off_from_top=%s info_minus_uc=%ld fp_aligned64=%d "
           "fp_above_uc=%d ss_flags_uc=%#x ss_flags_now=%#x set=%d/%s uc_flags=%#lx "
           "magic1=%#x magic2=%#x ext_size_ok=%d xfeatures_x87sse=%d\n",
           what, (int)(s->uc % 16 == 0),
           top ? (top - s->uc < 65536 ? "near" : "far") : "-", (long)(s->info - s->uc),
           (int)(s->fpstate % 64 == 0), (int)(s->fpstate > s->uc), s->ss_flags_uc,
           s->ss_flags_now, s->set_ret, s->set_ret ? strerror(s->set_errno) : "ok",
           (unsigned long)s->uc_flags, s->magic1, s->magic2,
           (int)(s->ext_size == s->xstate_size + 4), (int)((s->xfeatures & 3) == 3));
}

// Red zone and frame placement without an alternate stack: the frame ends 128 bytes below
// the interrupted rsp, then the FP area is 64-aligned and the frame 16-aligned minus 8.
static void test_redzone(void) {
    install(SIGUSR1, handler, 0);
    depth = 1;
    raise(SIGUSR1);
    struct seen *s = &seen[1];
    uintptr_t fp_end = s->fpstate + s->ext_size;
    printf("redzone: fp_end_below_rsp_minus_128=%d gap_lt_64=%d uc_minus_fp=%ld_le_%d\n",
           (int)(fp_end <= s->rsp_at_signal - 128), (int)(s->rsp_at_signal - 128 - fp_end < 64),
           (long)(s->fpstate - s->uc), (int)(s->fpstate - s->uc < 440 + 16));
}

static void test_altstack(int extra_flags) {
    stack_t ss = {.ss_sp = alt, .ss_size = ALT_SIZE, .ss_flags = extra_flags};
    if (sigaltstack(&ss, NULL)) {
        printf("sigaltstack flags %#x: %s\n", extra_flags, strerror(errno));
        return;
    }
    install(SIGUSR1, handler, SA_ONSTACK);
    install(SIGUSR2, nested_handler, SA_ONSTACK);
    memset(seen, 0, sizeof seen);
    depth = 0;
    raise(SIGUSR1);
    uintptr_t top = (uintptr_t)alt + ALT_SIZE;
    const char *mode = extra_flags ? "autodisarm" : "onstack";
    char name[64];
    snprintf(name, sizeof name, "%s outer", mode);
    print_seen(name, &seen[0], top);
    snprintf(name, sizeof name, "%s nested", mode);
    print_seen(name, &seen[1], top);
    int outer_on = seen[0].handler_sp > (uintptr_t)alt && seen[0].handler_sp < top;
    int nested_on = seen[1].handler_sp > (uintptr_t)alt && seen[1].handler_sp < top;
    printf("%s: outer_on_alt=%d nested_on_alt=%d nested_below_outer=%d\n", mode, outer_on,
           nested_on, (int)(seen[1].uc < seen[0].uc));
    stack_t after;
    sigaltstack(NULL, &after);
    printf("%s: after return sp_same=%d size=%zu flags=%#x\n", mode, (int)(after.ss_sp == alt),
           after.ss_size, after.ss_flags);
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, NULL);
}

static void test_sigaltstack_errors(void) {
    stack_t ss = {.ss_sp = alt, .ss_size = 1024, .ss_flags = 0};
    errno = 0;
    int r = sigaltstack(&ss, NULL);
    printf("small: %d %s\n", r, strerror(errno));
    ss.ss_size = ALT_SIZE;
    ss.ss_flags = 0x10;
    errno = 0;
    r = sigaltstack(&ss, NULL);
    printf("bad flags: %d %s\n", r, strerror(errno));
    ss.ss_flags = SS_ONSTACK;
    errno = 0;
    r = sigaltstack(&ss, NULL);
    printf("SS_ONSTACK as flag: %d %s\n", r, strerror(errno));
    stack_t cur;
    sigaltstack(NULL, &cur);
    printf("after SS_ONSTACK: flags=%#x\n", cur.ss_flags);
    ss.ss_flags = SS_DISABLE;
    ss.ss_size = 0;
    sigaltstack(&ss, NULL);
    sigaltstack(NULL, &cur);
    printf("disabled: sp_null=%d size=%zu flags=%#x\n", (int)(cur.ss_sp == NULL), cur.ss_size,
           cur.ss_flags);
}

// rt_sigreturn of a frame the handler changed: rbx, xmm0, the mask, uc_stack.
static volatile int modify;
static void modifying_handler(int sig, siginfo_t *info, void *ctx) {
    (void)sig;
    (void)info;
    ucontext_t *uc = ctx;
    uc->uc_mcontext.gregs[REG_RBX] = 0x1234567887654321;
    uc->uc_mcontext.fpregs->_xmm[0].element[0] = 0xcafef00d;
    uc->uc_mcontext.fpregs->_xmm[0].element[1] = 0xdeadbeef;
    sigaddset(&uc->uc_sigmask, SIGTERM);
    uc->uc_stack.ss_sp = alt2;
    uc->uc_stack.ss_size = ALT_SIZE;
    uc->uc_stack.ss_flags = 0;
    uc->uc_mcontext.gregs[REG_EFL] |= 1; // CF
}

static void test_modified_return(void) {
    install(SIGUSR1, modifying_handler, 0);
    long tid = syscall(SYS_gettid);
    uint64_t rbx_out, xmm_out, in = 0x1111111122222222;
    unsigned char cf;
    long nr = SYS_tgkill;
    long pid = getpid();
    __asm__ volatile("push %%rbx\n\t"
                     "movq %[in], %%xmm0\n\t"
                     "xor %%ebx, %%ebx\n\t"
                     "clc\n\t"
                     "syscall\n\t"
                     "setc %[cf]\n\t"
                     "movq %%rbx, %[rbx]\n\t"
                     "movq %%xmm0, %[xmm]\n\t"
                     "pop %%rbx\n\t"
                     : [rbx] "=&r"(rbx_out), [xmm] "=&r"(xmm_out), [cf] "=&r"(cf), "+a"(nr)
                     : [in] "r"(in), "D"(pid), "S"(tid), "d"((long)SIGUSR1)
                     : "rcx", "r11", "xmm0", "memory", "cc");
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    stack_t st;
    sigaltstack(NULL, &st);
    printf("modified: rbx=%#lx xmm0=%#lx cf=%d SIGTERM_blocked=%d altstack_is_new=%d size=%zu "
           "flags=%#x\n",
           (unsigned long)rbx_out, (unsigned long)xmm_out, cf, sigismember(&now, SIGTERM),
           (int)(st.ss_sp == alt2), st.ss_size, st.ss_flags);
    sigprocmask(SIG_UNBLOCK, &now, NULL);
    st.ss_flags = SS_DISABLE;
    sigaltstack(&st, NULL);
}

int main(void) {
    alt = malloc(ALT_SIZE);
    alt2 = malloc(ALT_SIZE);
    unsigned long min = getauxval(AT_MINSIGSTKSZ);
    // The frame Linux builds must fit what it advertises.
    install(SIGUSR1, handler, 0);
    depth = 1;
    raise(SIGUSR1);
    unsigned long need = seen[1].fpstate + seen[1].ext_size - seen[1].uc + 8;
    printf("frame_fits_minsigstksz=%d\n", (int)(need <= min));
    test_redzone();
    test_altstack(0);
    test_altstack((int)SS_AUTODISARM);
    test_sigaltstack_errors();
    test_modified_return();
    return 0;
}
