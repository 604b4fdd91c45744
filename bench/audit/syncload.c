// syncload RATE SECONDS FILE: append 5,000 bytes to FILE and fdatasync it RATE times a
// second for SECONDS, then print the syncs made and the CPU (user + system) per sync.
// bench/audit/floor.sh runs it beside the v2 benchmark: what durable writes cost the
// server when no request waits on them.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) {
  if (argc != 4) { fprintf(stderr, "usage: syncload RATE SECONDS FILE\n"); return 2; }
  double rate = atof(argv[1]), dur = atof(argv[2]);
  int fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) { perror(argv[3]); return 1; }
  static char buf[5000];
  long n = 0; double t0 = now();
  for (;;) {
    double t = now() - t0;
    if (t > dur) break;
    if (n < t * rate) { if (write(fd, buf, sizeof buf) < 0 || fdatasync(fd) < 0) return 1; n++; }
    else { double s = n / rate - t; struct timespec ts = { 0, (long)(s * 1e9) }; nanosleep(&ts, 0); }
  }
  struct rusage u; getrusage(RUSAGE_SELF, &u);
  double cpu = u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
  fprintf(stderr, "syncs/s %.0f cpu/sync %.1f us\n", n / dur, cpu / n * 1e6);
  return 0;
}
