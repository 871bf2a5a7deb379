/* Plain C driver for the shoal environments: no Python anywhere in the loop.
 *
 *   env_driver NAME [--envs N] [--agents A] [--seconds S] [--runs R] [--threads T] [--seed X] [--set k=v ...]
 *   env_driver NAME --asan --steps S [--envs N] [--set key=value ...]
 *
 * Build: bench/env_sps.py, bench/asan.sh and `shoal env check` generate driver_envs.h with envs_c/cdriver.py
 * and compile this file with the flags envs_c/build.py uses (or with sanitizers). Prints one JSON line.
 */
#include "driver_envs.h"

static int cmp_double(const void* x, const void* y) {
    double a = *(const double*)x, b = *(const double*)y;
    return (a > b) - (a < b);
}

/* One function on purpose (65 lines): a benchmark harness reads best as its options, then its one timed loop. */
int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s NAME [--envs N] [--seconds S] [--asan --steps S] [--set k=v]\n", argv[0]);
        return 2;
    }
    const char* name = argv[1];
    DriverArgs a = {.num_envs = 4096, .steps = 100000, .seconds = 3.0, .runs = 3, .asan = 0, .threads = 1, .seed = 0};
    char* keys[32];
    double vals[32];
    a.keys = keys;
    a.vals = vals;
    int agents_target = 0;
    for (int i = 2; i < argc; i++) {
        const char* arg = argv[i];
        const char* next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(arg, "--asan")) a.asan = 1;
        else if (!strcmp(arg, "--envs") && next) a.num_envs = atoi(argv[++i]);
        else if (!strcmp(arg, "--agents") && next) agents_target = atoi(argv[++i]);
        else if (!strcmp(arg, "--steps") && next) a.steps = atol(argv[++i]);
        else if (!strcmp(arg, "--seconds") && next) a.seconds = atof(argv[++i]);
        else if (!strcmp(arg, "--runs") && next) a.runs = atoi(argv[++i]);
        else if (!strcmp(arg, "--threads") && next) a.threads = atoi(argv[++i]);
        else if (!strcmp(arg, "--seed") && next) a.seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(arg, "--set") && next && a.nset < 32) {
            char* kv = argv[++i];
            char* eq = strchr(kv, '=');
            if (!eq) { fprintf(stderr, "--set wants key=value, got %s\n", kv); return 2; }
            *eq = 0;
            keys[a.nset] = kv;
            vals[a.nset++] = atof(eq + 1);
        } else {
            fprintf(stderr, "unknown argument %s\n", arg);
            return 2;
        }
    }
    for (int d = 0; d < NUM_DRIVERS; d++) {
        if (strcmp(DRIVERS[d].name, name)) continue;
        DriverResult r = {0};
        if (agents_target > 0) {
            /* Size the batch in agents, like the Python bench: probe one env for its agent count. */
            DriverArgs probe = a;
            probe.num_envs = 1;
            probe.asan = 1;
            probe.steps = 1;
            if (DRIVERS[d].run(&probe, &r)) return 1;
            a.num_envs = agents_target / r.agents > 0 ? agents_target / r.agents : 1;
        }
        if (a.num_envs < 1) { fprintf(stderr, "--envs must be positive\n"); return 2; }
        if (DRIVERS[d].run(&a, &r)) return 1;
        double sorted[16];
        memcpy(sorted, r.sps, sizeof(sorted));
        qsort(sorted, (size_t)r.runs, sizeof(double), cmp_double);
        printf("{\"env\": \"%s\", \"num_envs\": %d, \"num_agents\": %d, \"mode\": \"%s\", \"steps\": %ld",
               name, a.num_envs, r.agents, a.asan ? "asan" : "bench", r.steps);
        if (r.runs > 0) {
            printf(", \"sps_runs\": [");
            for (int k = 0; k < r.runs; k++) printf("%s%.0f", k ? ", " : "", r.sps[k]);
            printf("], \"sps_median\": %.0f", sorted[r.runs / 2]);
        }
        printf("}\n");
        return 0;
    }
    fprintf(stderr, "unknown environment %s\n", name);
    return 2;
}
