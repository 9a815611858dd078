/*
 * cpus: the CPUs this process may run on, and its cgroup's CPU quota.
 */
#include "cpus.h"

#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t drv_cpus_of_quota(long long quota, long long period)
{
    if (quota <= 0 || period <= 0)
        return 0;
    return (size_t)((quota + period - 1) / period);
}

size_t drv_cpus_of_cpu_max(const char *text)
{
    long long quota, period = 100000;
    if (strncmp(text, "max", 3) == 0)
        return 0;
    if (sscanf(text, "%lld %lld", &quota, &period) < 1)
        return 0;
    return drv_cpus_of_quota(quota, period);
}

/* The first line of `path`, into buf. Returns 0, or -1. */
static int read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char *got = fgets(buf, (int)len, f);
    fclose(f);
    return got ? 0 : -1;
}

/* Quota CPUs of cgroup `dir` (v2 when `v2`), 0 for none; -1 when its
 * files cannot be read. */
static long quota_of(const char *dir, bool v2)
{
    char path[4200], text[64];
    if (v2) {
        snprintf(path, sizeof(path), "/sys/fs/cgroup%s/cpu.max", dir);
        if (read_line(path, text, sizeof(text)) != 0)
            return -1;
        return (long)drv_cpus_of_cpu_max(text);
    }
    snprintf(path, sizeof(path), "/sys/fs/cgroup/cpu%s/cpu.cfs_quota_us", dir);
    if (read_line(path, text, sizeof(text)) != 0)
        return -1;
    long long quota = strtoll(text, NULL, 10);
    snprintf(path, sizeof(path), "/sys/fs/cgroup/cpu%s/cpu.cfs_period_us", dir);
    if (read_line(path, text, sizeof(text)) != 0)
        return -1;
    return (long)drv_cpus_of_quota(quota, strtoll(text, NULL, 10));
}

/* The CPU quota of this process's cgroup, in CPUs; 0 when there is none
 * or it cannot be read. In a container without a cgroup namespace
 * /proc/self/cgroup names the host's path while the container sees its
 * own cgroup at the mount's root: that is tried next. */
static size_t quota_cpus(void)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return 0;
    char line[4096];
    long cpus = -1;
    while (cpus < 0 && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        /* "0::/path" (v2), or "N:cpu,cpuacct:/path" (v1). */
        char *ctrl = strchr(line, ':');
        char *dir = ctrl ? strchr(ctrl + 1, ':') : NULL;
        if (!dir)
            continue;
        *dir++ = '\0';
        ctrl++;
        bool v2 = strcmp(line, "0") == 0 && *ctrl == '\0', cpu = false;
        char *save = NULL;
        for (char *t = strtok_r(ctrl, ",", &save); t && !v2;
             t = strtok_r(NULL, ",", &save))
            cpu |= strcmp(t, "cpu") == 0;
        if (!v2 && !cpu)
            continue;
        if (strcmp(dir, "/") == 0)
            dir[0] = '\0';
        cpus = quota_of(dir, v2);
        if (cpus < 0 && dir[0])
            cpus = quota_of("", v2);
    }
    fclose(f);
    return cpus > 0 ? (size_t)cpus : 0;
}

size_t drv_usable_cpus(void)
{
    cpu_set_t set;
    size_t cpus = sched_getaffinity(0, sizeof(set), &set) == 0
                      ? (size_t)CPU_COUNT(&set)
                      : 1;
    size_t quota = quota_cpus();
    if (quota && quota < cpus)
        cpus = quota;
    return cpus ? cpus : 1;
}
