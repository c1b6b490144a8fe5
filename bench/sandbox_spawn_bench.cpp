// Spawn latency of a fully sandboxed /bin/true (cgroup leaf + mount/PID/IPC/UTS namespaces +
// read-only host + private /tmp + proc + seccomp + no capabilities + user switch), median of
// N runs, side by side with bubblewrap and unshare(1) doing comparable work in the same run.
// Not a test: it prints figures and ratios (target: at most half of bwrap's median).
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "isolation/cgroup.hpp"
#include "isolation/sandbox.hpp"
#include "isolation/spawn.hpp"

using namespace mfserv;

namespace {

double now_ms() {
  struct timespec ts {};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

double run_command(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  double start = now_ms();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "%s failed (status %d)\n", argv[0].c_str(), status);
    std::exit(1);
  }
  return now_ms() - start;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = argc > 1 ? std::atoi(argv[1]) : 100;
  auto cgroups = isolation::detect_cgroups();
  if (!cgroups) {
    std::fprintf(stderr, "%s\n", cgroups.error().describe().c_str());
    return 1;
  }
  std::string leaf = "mfserv/bench-" + std::to_string(::getpid());
  isolation::CgroupLimits limits;
  limits.memory_max = 256ULL << 20;
  if (auto st = (*cgroups)->create(leaf, limits); !st) {
    std::fprintf(stderr, "%s\n", st.error().describe().c_str());
    return 1;
  }
  isolation::SandboxSpec spec;
  spec.hostname = "bench.mfserv";
  spec.user = "mfserv";
  spec.private_tmp = {"/tmp", "/var/tmp", "/dev/shm"};
  spec.readonly = {"/usr"};
  auto sandbox = isolation::prepare_sandbox(spec);
  if (!sandbox) {
    std::fprintf(stderr, "%s\n", sandbox.error().describe().c_str());
    return 1;
  }
  std::vector<double> ours;
  for (int i = 0; i < runs; ++i) {
    double start = now_ms();
    auto procs = (*cgroups)->open_procs(leaf);
    isolation::SpawnSpec process;
    process.argv = {"/bin/true"};
    process.env = {"PATH=/usr/bin:/bin"};
    process.sandbox = &*sandbox;
    for (const auto& fd : *procs) {
      process.cgroup_procs_fds.push_back(fd.get());
    }
    auto spawned = isolation::spawn(process);
    if (!spawned) {
      std::fprintf(stderr, "%s\n", spawned.error().describe().c_str());
      return 1;
    }
    int status = 0;
    ::waitpid(spawned->pid, &status, 0);
    ours.push_back(now_ms() - start);
  }
  (void)(*cgroups)->remove(leaf);

  std::vector<double> bwrap;
  std::vector<double> unshare;
  for (int i = 0; i < runs; ++i) {
    bwrap.push_back(run_command({"bwrap", "--unshare-all", "--ro-bind", "/", "/", "--dev", "/dev",
                                 "--proc", "/proc", "--tmpfs", "/tmp", "true"}));
    unshare.push_back(run_command({"unshare", "-fmpiu", "--mount-proc", "true"}));
  }
  double m_ours = median(ours);
  double m_bwrap = median(bwrap);
  double m_unshare = median(unshare);
  std::printf("sandboxed /bin/true, median of %d runs\n", runs);
  std::printf("  %-44s %8.2f ms\n", "mfserv (cgroup+ns+mounts+seccomp+caps+user)", m_ours);
  std::printf("  %-44s %8.2f ms\n", "bwrap --unshare-all ... true", m_bwrap);
  std::printf("  %-44s %8.2f ms\n", "unshare -fmpiu --mount-proc true", m_unshare);
  std::printf("  ratio mfserv/bwrap   = %.2f (target <= 0.50)\n", m_ours / m_bwrap);
  std::printf("  ratio mfserv/unshare = %.2f\n", m_ours / m_unshare);
  return 0;
}
