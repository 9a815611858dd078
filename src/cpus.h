/*
 * cpus: how many CPUs this process can keep busy at once.
 *
 * The CPUs it may run on (sched_getaffinity), fewer when its cgroup's CPU
 * quota allows less than that: a container started with --cpus=2, or a
 * Kubernetes CPU limit, on a host of 64 CPUs. The quota is read from the
 * process's own cgroup: cgroup v2's cpu.max, or v1's cpu.cfs_quota_us and
 * cpu.cfs_period_us. Used by the workers' connection balancing (worker.c).
 */
#ifndef DRV_CPUS_H
#define DRV_CPUS_H

#include <stddef.h>

/* At least 1. */
size_t drv_usable_cpus(void);

/* CPUs a quota of `quota` per `period` microseconds amounts to, rounded
 * up; 0 for no limit (a negative quota, v1's -1) or nonsense. */
size_t drv_cpus_of_quota(long long quota, long long period);

/* The same from the text of a cgroup v2 cpu.max ("max 100000",
 * "150000 100000"): 0 for no limit or text it cannot read. */
size_t drv_cpus_of_cpu_max(const char *text);

#endif
