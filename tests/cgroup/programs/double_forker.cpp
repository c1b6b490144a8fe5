// Test program: the daemon pattern that escapes a process-group kill. It forks a child that
// calls setsid() and forks a grandchild, then exits; the grandchild prints
// "grandchild PID" and sleeps until killed, reparented away from us. The program itself
// waits for the child, then prints "child exited" and sleeps. The child exits only after
// the grandchild has printed, so the two lines always come in that order. Plain libc only.
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main() {
  int ready[2];
  if (pipe(ready) != 0) {
    perror("pipe");
    return 1;
  }
  pid_t child = fork();
  if (child < 0) {
    perror("fork");
    return 1;
  }
  if (child == 0) {
    setsid();
    pid_t grandchild = fork();
    if (grandchild < 0) {
      _exit(1);
    }
    if (grandchild == 0) {
      close(ready[0]);
      printf("grandchild %d\n", static_cast<int>(getpid()));
      fflush(stdout);
      close(ready[1]);
      for (;;) {
        pause();
      }
    }
    close(ready[1]);
    char byte = 0;
    // End of file once the grandchild has printed and closed its end.
    while (read(ready[0], &byte, 1) > 0) {
    }
    _exit(0);
  }
  close(ready[0]);
  close(ready[1]);
  int status = 0;
  waitpid(child, &status, 0);
  printf("child exited\n");
  fflush(stdout);
  for (;;) {
    pause();
  }
}
