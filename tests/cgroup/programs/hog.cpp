// Test program: allocates and touches MIB mebibytes, STEP_MIB at a time, then prints
// "allocated N" and waits for a signal. Used to trigger a memory-cgroup OOM kill.
// Plain libc only, so that it links statically into the VM's initramfs.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s MIB [STEP_MIB]\n", argv[0]);
    return 2;
  }
  long total = atol(argv[1]);
  long step = argc > 2 ? atol(argv[2]) : 1;
  if (step < 1) {
    step = 1;
  }
  const size_t k_mib = 1024 * 1024;
  long done = 0;
  while (done < total) {
    char* block = static_cast<char*>(malloc(static_cast<size_t>(step) * k_mib));
    if (block == nullptr) {
      printf("malloc failed at %ld\n", done);
      fflush(stdout);
      return 1;
    }
    // Touch every page so that it is charged to the cgroup.
    memset(block, 0x5a, static_cast<size_t>(step) * k_mib);
    done += step;
  }
  printf("allocated %ld\n", done);
  fflush(stdout);
  for (;;) {
    pause();
  }
}
