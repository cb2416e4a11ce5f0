// N threads (argv[1], default 4) x mutex/condvar counter: each thread adds 1 per turn, turns
// handed round-robin, so every increment is a futex hand-off between threads.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_THREADS 256
#define ROUNDS 2000

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static long counter;
static int turn;
static int threads = 4;
static int rounds = ROUNDS;

static void *worker(void *arg) {
    int id = (int)(long)arg;
    for (int i = 0; i < rounds; i++) {
        pthread_mutex_lock(&mu);
        while (turn != id)
            pthread_cond_wait(&cv, &mu);
        counter++;
        turn = (turn + 1) % threads;
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&mu);
    }
    return (void *)(long)id;
}

int main(int argc, char **argv) {
    if (argc > 1)
        threads = atoi(argv[1]);
    if (argc > 2)
        rounds = atoi(argv[2]);
    if (threads < 1 || threads > MAX_THREADS || rounds < 1)
        return 2;
    pthread_t th[MAX_THREADS];
    for (long i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, worker, (void *)i);
    long sum = 0;
    for (int i = 0; i < threads; i++) {
        void *r;
        pthread_join(th[i], &r);
        sum += (long)r;
    }
    printf("threads=%d counter=%ld ids=%ld\n", threads, counter, sum);
    return counter == (long)threads * rounds ? 0 : 1;
}
