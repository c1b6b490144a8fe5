// Test program: forks up to N children that sleep until killed, then prints
// "forked K errno E" (E is 0 when all N forks worked, else the errno of the failing fork)
// and sleeps too. With pids.max set it is a bounded fork bomb. Plain libc only.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s N\n", argv[0]);
    return 2;
  }
  long wanted = atol(argv[1]);
  long forked = 0;
  int error = 0;
  while (forked < wanted) {
    pid_t pid = fork();
    if (pid < 0) {
      error = errno;
      break;
    }
    if (pid == 0) {
      for (;;) {
        pause();
      }
    }
    ++forked;
  }
  printf("forked %ld errno %d\n", forked, error);
  fflush(stdout);
  for (;;) {
    pause();
  }
}
