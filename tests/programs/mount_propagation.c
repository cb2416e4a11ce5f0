/* Mount propagation, printed so the output compares between native Linux and the sandbox:
 * MS_SHARED peer groups (mountinfo's shared:N, distinct per group, the same for a bind's
 * peer), mounts and unmounts propagating between peers, MS_SLAVE (master:N; mounts reach the
 * slave from its master, not back), binds of slaves, MS_PRIVATE ending it all.
 * Natively it runs in a private mount namespace of its own.
 * Usage: mount_propagation */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "outcome.h"

/* The propagation fields of the topmost mount at `dir`/`name`: "shared:N master:M" with N
 * and M as the letters of the groups in order of first appearance (numbers differ). */
static int groups[64], ngroups;
static char letter(int g) {
    for (int i = 0; i < ngroups; i++)
        if (groups[i] == g)
            return 'A' + i;
    groups[ngroups] = g;
    return 'A' + ngroups++;
}

static void show(const char *name) {
    char want[256], line[1024], last[256] = "";
    int count = 0;
    snprintf(want, sizeof want, "%s/%s", dir, name);
    FILE *f = fopen("/proc/self/mountinfo", "r");
    while (fgets(line, sizeof line, f)) {
        char mp[512];
        if (sscanf(line, "%*s %*s %*s %*s %511s", mp) != 1 || strcmp(mp, want) != 0)
            continue;
        count++;
        last[0] = 0;
        char *p = line;
        for (int i = 0; i < 6; i++)
            p = strchr(p, ' ') + 1;
        while (strncmp(p, "- ", 2) != 0) {
            int g;
            if (sscanf(p, "shared:%d", &g) == 1)
                sprintf(last + strlen(last), " shared:%c", letter(g));
            else if (sscanf(p, "master:%d", &g) == 1)
                sprintf(last + strlen(last), " master:%c", letter(g));
            p = strchr(p, ' ') + 1;
        }
    }
    fclose(f);
    printf("%s: %d mounts,%s\n", name, count, count ? (last[0] ? last : " private") : " -");
}

static void tmpfs(const char *name) { mount("none", at(name), "tmpfs", 0, "mode=0755"); }

int main(void) {
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        perror("private mount namespace");
        return 1;
    }
    strcpy(dir, "/tmp/mount_prop.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    mount("none", dir, "tmpfs", 0, "mode=0755");
    for (const char *d = "a\0b\0c\0d\0e\0"; *d; d += strlen(d) + 1)
        mkdir(at(d), 0755);

    tmpfs("a");
    show("a");
    result("make a shared", mount(NULL, at("a"), NULL, MS_SHARED, NULL));
    tmpfs("b");
    result("make b shared", mount(NULL, at("b"), NULL, MS_SHARED, NULL));
    show("a");
    show("b");
    result("make a shared again", mount(NULL, at("a"), NULL, MS_SHARED, NULL));
    show("a");

    /* A bind of a shared mount is its peer; mounts on either reach the other. */
    mkdir(at("a/x"), 0755);
    result("bind a to c", mount(at("a"), at("c"), NULL, MS_BIND, NULL));
    show("c");
    tmpfs("a/x");
    show("a/x");
    show("c/x");
    close(open(at("c/x/f"), O_CREAT | O_WRONLY, 0644));
    result("file made in c/x seen in a/x", access(at("a/x/f"), F_OK));
    result("umount a/x", umount2(at("a/x"), 0));
    show("c/x");

    /* A slave receives from its master, not the other way. */
    result("bind a to d", mount(at("a"), at("d"), NULL, MS_BIND, NULL));
    result("make d a slave", mount(NULL, at("d"), NULL, MS_SLAVE, NULL));
    show("d");
    tmpfs("a/x");
    show("d/x");
    mkdir(at("d/y"), 0755);
    tmpfs("d/y");
    show("a/y");
    show("d/y");
    umount2(at("d/y"), 0);
    result("bind the slave to e", mount(at("d"), at("e"), NULL, MS_BIND, NULL));
    show("e");
    result("make e private", mount(NULL, at("e"), NULL, MS_PRIVATE, NULL));
    show("e");
    result("make d private", mount(NULL, at("d"), NULL, MS_PRIVATE, NULL));
    show("d");
    result("propagation with other flags", mount(NULL, at("a"), NULL, MS_SHARED | MS_RDONLY, NULL));
    result("two propagation types", mount(NULL, at("a"), NULL, MS_SHARED | MS_SLAVE, NULL));
    mkdir(at("a/z"), 0755);
    result("propagation of a non-mount", mount(NULL, at("a/z"), NULL, MS_PRIVATE, NULL));

    umount2(dir, MNT_DETACH);
    rmdir(dir);
    printf("done\n");
    return 0;
}
