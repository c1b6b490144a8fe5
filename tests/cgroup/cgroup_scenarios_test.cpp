// cgroup scenarios against the REAL backend detect_cgroups() returns: v1 on this host, v2 in
// the VM of scripts/vm-test (at the hierarchy root, then inside a systemd-shaped delegated
// cgroup). Limits are read back from the kernel files, not through the backend. Each test
// works below its own "mfserv/test-<pid>-<n>" and removes it. Needs root: without it the
// tests warn "SKIPPED" (ctest shows them as skipped), under MFSERV_TESTS_MUST_RUN=1 they fail.
//
// Environment (set by the VM's /init; defaults fit this host):
//   MFSERV_TEST_PROGRAMS_DIR         where the helper programs are (default: the build's)
//   MFSERV_TEST_EXPECT_CONTROLLERS   controllers usable below the base, "memory pids cpu"
//   MFSERV_TEST_EXPECT_DELEGATED     1: the base must be a delegated cgroup
#include <fcntl.h>
#include <libcgroup.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "isolation/cgroup.hpp"
#include "isolation/cgroup_backends.hpp"
#include "isolation/cgroup_fs.hpp"
#include "isolation/spawn.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

namespace {

using namespace mfserv;
using namespace mfserv::isolation;

constexpr std::uint64_t k_mib = 1024 * 1024;
constexpr int k_wait_ms = 60000;  // generous: the VM runs under software emulation

std::string env_or(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::string(value) : fallback;
}

bool must_run() {
  return env_or("MFSERV_TESTS_MUST_RUN", "") == "1";
}

std::string program(const std::string& name) {
  return env_or("MFSERV_TEST_PROGRAMS_DIR", MFSERV_CGROUP_PROGRAMS_DIR) + "/" + name;
}

bool expects_controller(const std::string& name) {
  for (const auto& word : split(env_or("MFSERV_TEST_EXPECT_CONTROLLERS", "memory pids cpu"), ' ')) {
    if (word == name) {
      return true;
    }
  }
  return false;
}

std::string text_of(const std::string& path) {
  auto content = read_file(path);
  return content ? trim(*content) : "<" + path + " unreadable>";
}

// The cgroup mounts as the kernel lists them (the test does not trust the backend for this).
struct Mounts {
  std::string v2;                         // cgroup2 mount holding the memory controller
  std::map<std::string, std::string> v1;  // controller -> v1 mount
};

Mounts read_mounts() {
  Mounts mounts;
  auto content = read_file("/proc/self/mounts");
  REQUIRE(content.ok());
  for (const auto& line : split(*content, '\n')) {
    auto fields = split(line, ' ');
    if (fields.size() < 4) {
      continue;
    }
    if (fields[2] == "cgroup2" && path_exists(fields[1] + "/memory.stat")) {
      mounts.v2 = fields[1];
    } else if (fields[2] == "cgroup") {
      for (const auto& option : split(fields[3], ',')) {
        if (option == "memory" || option == "pids" || option == "cpu" || option == "freezer") {
          mounts.v1[option] = fields[1];
        }
      }
    }
  }
  return mounts;
}

// PID's cgroup in the hierarchy of CONTROLLER ("" : v2), from /proc/PID/cgroup.
std::string cgroup_of(pid_t pid, const std::string& controller) {
  for (const auto& line : split(text_of("/proc/" + std::to_string(pid) + "/cgroup"), '\n')) {
    auto fields = split(line, ':');
    if (fields.size() < 3) {
      continue;
    }
    auto names = split(fields[1], ',');
    if ((controller.empty() && fields[1].empty()) ||
        (!controller.empty() && std::find(names.begin(), names.end(), controller) != names.end())) {
      return fields[2];
    }
  }
  return "";
}

bool process_gone(pid_t pid) {
  auto stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) {
    return true;
  }
  auto paren = stat->rfind(')');
  char state = paren != std::string::npos && paren + 2 < stat->size() ? (*stat)[paren + 2] : '?';
  return state == 'Z' || state == 'X';
}

// Waits for PID; the raw wait status, or -1 after TIMEOUT_MS.
int wait_exit(pid_t pid, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    int status = 0;
    pid_t got = ::waitpid(pid, &status, WNOHANG);
    if (got == pid) {
      return status;
    }
    if (got < 0 || std::chrono::steady_clock::now() > deadline) {
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

bool killed_by_sigkill(int status) {
  return status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

// One line of a child's stdout ("" on timeout or end of file).
std::string read_line(int fd, int timeout_ms) {
  std::string line;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p = {fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      return "";
    }
    char c = 0;
    if (::read(fd, &c, 1) != 1) {
      return "";
    }
    if (c == '\n') {
      return line;
    }
    line += c;
  }
}

struct Child {
  pid_t pid = -1;
  UniqueFd out;
};

bool eventually(const std::function<bool()>& condition, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

#define REQUIRE_OK(expr)                                                \
  do {                                                                  \
    auto status_ = (expr);                                              \
    INFO(#expr << ": " << (status_ ? "" : status_.error().describe())); \
    REQUIRE(status_.ok());                                              \
  } while (false)

class CgroupFixture {
 public:
  CgroupFixture() {
    if (::geteuid() != 0) {
      skip("cgroup scenarios need root");
      return;
    }
    auto detected = detect_cgroups();
    if (!detected) {
      skip("no usable cgroups: " + detected.error().describe());
      return;
    }
    m_backend = std::move(*detected);
    // As the supervisor does first (C9): a no-op unless the base is delegated.
    REQUIRE_OK(m_backend->enter_leaf());
    // Orphans of double-forking helpers come back to us, to be reaped.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    static int counter = 0;
    m_root = "mfserv/test-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
    m_mounts = read_mounts();
  }

  ~CgroupFixture() {
    if (m_backend) {
      (void)m_backend->kill_all(m_root, 5000);
      (void)m_backend->remove(m_root);
      (void)m_backend->remove_if_empty("mfserv");
    }
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
  }

  CgroupFixture(const CgroupFixture&) = delete;
  CgroupFixture& operator=(const CgroupFixture&) = delete;

 protected:
  bool ready() const { return m_backend != nullptr; }
  CgroupBackend& cg() { return *m_backend; }
  bool v2() const { return m_backend->mode() == "v2"; }
  std::string rel(const std::string& sub) const { return m_root + "/" + sub; }

  // The directory of REL in the kernel's hierarchy of CONTROLLER (any on v2).
  std::string kdir(const std::string& controller, const std::string& relative) const {
    if (v2()) {
      return m_mounts.v2 + m_backend->display_path(relative);
    }
    auto it = m_mounts.v1.find(controller);
    return it == m_mounts.v1.end() ? "" : it->second + "/" + relative;
  }
  std::string kfile(const std::string& controller, const std::string& relative,
                    const std::string& file) const {
    return text_of(kdir(controller, relative) + "/" + file);
  }
  // Every directory REL has in the kernel (one per v1 hierarchy).
  std::vector<std::string> kdirs(const std::string& relative) const {
    if (v2()) {
      return {kdir("", relative)};
    }
    std::vector<std::string> dirs;
    for (const auto& [controller, mount] : m_mounts.v1) {
      dirs.push_back(mount + "/" + relative);
    }
    return dirs;
  }

  // fork, join REL with open_procs + join_cgroup_fds, exec ARGV with stdout on a pipe.
  Child spawn_in(const std::string& relative, const std::vector<std::string>& argv) {
    auto fds = m_backend->open_procs(relative);
    INFO("open_procs(" << relative << "): " << (fds ? "" : fds.error().describe()));
    REQUIRE(fds.ok());
    std::vector<int> raw;
    for (const auto& fd : *fds) {
      raw.push_back(fd.get());
    }
    std::vector<char*> args;
    for (const auto& arg : argv) {
      args.push_back(const_cast<char*>(arg.c_str()));
    }
    args.push_back(nullptr);
    int pipe_fds[2];
    REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      // Between fork and exec: system calls on memory prepared before the fork only.
      ::dup2(pipe_fds[1], STDOUT_FILENO);
      if (join_cgroup_fds(raw.data(), static_cast<int>(raw.size())) != 0) {
        ::_exit(120);
      }
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(pipe_fds[1]);
    return Child{pid, UniqueFd(pipe_fds[0])};
  }

 private:
  void skip(const std::string& why) {
    if (must_run()) {
      FAIL(why << " (MFSERV_TESTS_MUST_RUN=1)");
    }
    WARN("SKIPPED: " << why);
  }

  std::unique_ptr<CgroupBackend> m_backend;
  std::string m_root;
  Mounts m_mounts;
};

}  // namespace

TEST_CASE_METHOD(CgroupFixture, "limits are applied and read back from the kernel files",
                 "[cgroup]") {
  if (!ready()) {
    return;
  }
  bool cpu = expects_controller("cpu");
  CgroupLimits app;
  app.memory_max = 64 * k_mib;
  app.memory_high = 48 * k_mib;
  app.swap_max = 0;
  app.pids_max = 50;
  if (cpu) {
    app.cpu_weight = 50;
    app.cpu_max = "50000 100000";
  }
  REQUIRE_OK(cg().create(rel("app"), app));
  CgroupLimits leaf;
  leaf.memory_max = 32 * k_mib;
  leaf.swap_max = 0;
  REQUIRE_OK(cg().create(rel("app/w1"), leaf));
  bool swap_limit = cg().check().swap_limit;

  if (v2()) {
    CHECK(kfile("", rel("app"), "memory.max") == "67108864");
    CHECK(kfile("", rel("app"), "memory.high") == "50331648");
    CHECK(kfile("", rel("app"), "pids.max") == "50");
    CHECK(kfile("", rel("app/w1"), "memory.max") == "33554432");
    if (swap_limit) {
      CHECK(kfile("", rel("app"), "memory.swap.max") == "0");
      CHECK(kfile("", rel("app/w1"), "memory.swap.max") == "0");
    } else {
      WARN("this kernel has no memory.swap.max: swap_max is reported, not applied");
    }
    if (cpu) {
      CHECK(kfile("", rel("app"), "cpu.weight") == "50");
      CHECK(kfile("", rel("app"), "cpu.max") == "50000 100000");
    }
  } else {
    CHECK(kfile("memory", rel("app"), "memory.limit_in_bytes") == "67108864");
    CHECK(kfile("memory", rel("app"), "memory.soft_limit_in_bytes") == "50331648");
    CHECK(kfile("pids", rel("app"), "pids.max") == "50");
    CHECK(kfile("memory", rel("app/w1"), "memory.limit_in_bytes") == "33554432");
    if (swap_limit) {
      // memsw = memory + swap: swap_max 0 makes it equal to the memory limit.
      CHECK(kfile("memory", rel("app"), "memory.memsw.limit_in_bytes") == "67108864");
      CHECK(kfile("memory", rel("app/w1"), "memory.memsw.limit_in_bytes") == "33554432");
    } else {
      WARN("this host has no memory.memsw.*: swap_max is reported, not applied");
    }
    if (cpu) {
      CHECK(kfile("cpu", rel("app"), "cpu.shares") == "512");  // weight 50 of 100 = 1024/2
      CHECK(kfile("cpu", rel("app"), "cpu.cfs_quota_us") == "50000");
      CHECK(kfile("cpu", rel("app"), "cpu.cfs_period_us") == "100000");
    }
  }
  CHECK(cg().usage(rel("app")).memory_limit == 64 * k_mib);
  CHECK(cg().usage(rel("app/w1")).memory_limit == 32 * k_mib);

  // Re-applying a larger limit works (v1: memsw must never be below the memory limit).
  app.memory_max = 128 * k_mib;
  REQUIRE_OK(cg().create(rel("app"), app));
  CHECK(cg().usage(rel("app")).memory_limit == 128 * k_mib);

  // Limits a reload removed go back to the kernel's defaults on the existing cgroup (they
  // used to stay as last written).
  REQUIRE_OK(cg().create(rel("app"), CgroupLimits{}));
  CHECK_FALSE(cg().usage(rel("app")).memory_limit.has_value());
  if (v2()) {
    CHECK(kfile("", rel("app"), "memory.max") == "max");
    CHECK(kfile("", rel("app"), "memory.high") == "max");
    CHECK(kfile("", rel("app"), "pids.max") == "max");
    if (cpu) {
      CHECK(kfile("", rel("app"), "cpu.weight") == "100");
      CHECK(kfile("", rel("app"), "cpu.max") == "max 100000");
    }
  } else {
    CHECK(kfile("pids", rel("app"), "pids.max") == "max");
    if (cpu) {
      CHECK(kfile("cpu", rel("app"), "cpu.shares") == "1024");
      CHECK(kfile("cpu", rel("app"), "cpu.cfs_quota_us") == "-1");
    }
  }

  if (!cpu) {
    // C11 with a controller the base does not have (the VM's delegated shape has no cpu).
    CgroupLimits wants_cpu;
    wants_cpu.cpu_weight = 50;
    auto st = cg().create(rel("needs-cpu"), wants_cpu);
    REQUIRE_FALSE(st.ok());
    CHECK_THAT(st.error().message(), Catch::Contains("cpu controller is not available"));
  }
}

TEST_CASE_METHOD(CgroupFixture, "a limit that cannot be applied is an error", "[cgroup]") {
  if (!ready()) {
    return;
  }
  SECTION("an invalid cpu_max value") {
    if (!expects_controller("cpu")) {
      return;  // covered by the missing-controller case of the limits scenario
    }
    for (const char* value : {"lots 100000", "500 100000"}) {  // not a number; below 1 ms
      CgroupLimits limits;
      limits.cpu_max = value;
      auto st = cg().create(rel("bad"), limits);
      INFO("cpu_max=" << value);
      REQUIRE_FALSE(st.ok());
      CHECK(st.error().code() == EINVAL);
      CHECK_THAT(st.error().message(), Catch::Contains(v2() ? "cpu.max" : "cpu.cfs_quota_us"));
    }
  }
  SECTION("a control file that does not exist") {
    REQUIRE_OK(cg().create(rel("app"), CgroupLimits{}));
    auto st = write_control(kdir("memory", rel("app")), "memory.no_such_limit", "1");
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().code() == ENOENT);
    CHECK_THAT(st.error().message(), Catch::Contains("memory.no_such_limit=1"));
  }
  SECTION("a controller the hierarchy does not offer") {
    CgroupLimits limits;
    limits.pids_max = 10;
    std::unique_ptr<CgroupBackend> without_pids;
    if (v2()) {
      // A base whose parent enables memory only, as a manager delegating just that would.
      REQUIRE_OK(cg().create(rel("memory-only"), CgroupLimits{}));
      std::string parent = kdir("", rel("memory-only"));
      REQUIRE(::mkdir((parent + "/base").c_str(), 0755) == 0);
      REQUIRE_OK(write_control(parent, "cgroup.subtree_control", "+memory"));
      without_pids =
          make_v2_backend(read_mounts().v2,
                          V2Base{cg().display_path(rel("memory-only/base")).substr(1), false, ""});
      CgroupLimits memory_only;
      memory_only.memory_max = 16 * k_mib;
      REQUIRE_OK(without_pids->create("app", memory_only));
      CHECK(text_of(parent + "/base/app/memory.max") == "16777216");
    } else {
      auto mounts = read_mounts().v1;
      mounts.erase("pids");
      without_pids = make_v1_backend(mounts);
    }
    // v1: a path below the test root, as this backend's paths start at the hierarchy root.
    auto st = without_pids->create(v2() ? "app2" : rel("app2"), limits);
    REQUIRE_FALSE(st.ok());
    CHECK_THAT(st.error().message(), Catch::Contains("pids"));
    if (v2()) {
      CHECK_FALSE(is_directory(kdir("", rel("memory-only/base/app2"))));
      CHECK_FALSE(without_pids->check().missing.empty());
    }
  }
}

// libcgroup reads the mount table in a short-lived child: its tables (~800 KiB once filled)
// never stay in the process that asked, the supervisor.
TEST_CASE_METHOD(CgroupFixture, "detection leaves libcgroup's tables unfilled in the caller",
                 "[cgroup]") {
  if (!ready()) {
    return;
  }
  char* mount = nullptr;
  CHECK(cgroup_get_subsys_mount_point("memory", &mount) == ECGROUPNOTINITIALIZED);
  CHECK(mount == nullptr);
  // Creation goes through the kernel interface and still reaches every hierarchy.
  REQUIRE_OK(cg().create(rel("made/deep"), CgroupLimits{}));
  for (const auto& dir : kdirs(rel("made/deep"))) {
    INFO(dir);
    CHECK(is_directory(dir));
  }
  CHECK(kdirs(rel("made/deep")).size() == (v2() ? 1u : 4u));
}

TEST_CASE_METHOD(CgroupFixture, "a child joins its leaf between fork and exec", "[cgroup]") {
  if (!ready()) {
    return;
  }
  REQUIRE_OK(cg().create(rel("app"), CgroupLimits{}));
  REQUIRE_OK(cg().create(rel("app/w1"), CgroupLimits{}));
  Child child = spawn_in(rel("app/w1"), {program("mfserv_test_forker"), "0"});
  REQUIRE(read_line(child.out.get(), k_wait_ms) == "forked 0 errno 0");

  if (v2()) {
    CHECK(cgroup_of(child.pid, "") == cg().display_path(rel("app/w1")));
  } else {
    for (const char* controller : {"memory", "pids", "cpu", "freezer"}) {
      INFO(controller);
      CHECK(cgroup_of(child.pid, controller) == "/" + rel("app/w1"));
    }
  }
  auto in_leaf = cg().pids(rel("app/w1"));
  auto in_app = cg().pids(rel("app"));
  CHECK(in_leaf == std::vector<pid_t>{child.pid});
  CHECK(in_app == std::vector<pid_t>{child.pid});
  REQUIRE_OK(cg().kill_all(rel("app"), 5000));
  CHECK(killed_by_sigkill(wait_exit(child.pid, k_wait_ms)));
}

TEST_CASE_METHOD(CgroupFixture,
                 "spawn: born in its leaf on v2 (clone3 CLONE_INTO_CGROUP) or joins it before exec",
                 "[cgroup]") {
  if (!ready()) {
    return;
  }
  CgroupLimits limits;
  limits.pids_max = 64;
  REQUIRE_OK(cg().create(rel("app"), limits));
  REQUIRE_OK(cg().create(rel("app/w1"), limits));
  auto procs = cg().open_procs(rel("app/w1"));
  REQUIRE(procs.ok());
  auto dir = cg().open_dir(rel("app/w1"));
  INFO("open_dir: " << (dir ? "" : dir.error().describe()));
  REQUIRE(dir.ok() == v2());

  int pipe_fds[2];
  REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
  UniqueFd out_read(pipe_fds[0]);
  UniqueFd out_write(pipe_fds[1]);
  SpawnSpec spec;
  spec.argv = {program("mfserv_test_forker"), "0"};
  spec.output_fd = out_write.get();
  for (const auto& fd : *procs) {
    spec.cgroup_procs_fds.push_back(fd.get());
  }
  spec.cgroup_dir_fd = dir ? dir->get() : -1;
  auto spawned = spawn(spec);
  INFO("spawn: " << (spawned ? "" : spawned.error().describe()));
  REQUIRE(spawned.ok());
  out_write.reset();
  REQUIRE(read_line(out_read.get(), k_wait_ms) == "forked 0 errno 0");
  // The kernels this runs on (host and VM) have clone3 CLONE_INTO_CGROUP (5.7+).
  CHECK(spawned->born_in_cgroup == v2());
  CHECK(spawned->pidfd.valid());
  if (v2()) {
    CHECK(cgroup_of(spawned->pid, "") == cg().display_path(rel("app/w1")));
  } else {
    for (const char* controller : {"memory", "pids"}) {
      INFO(controller);
      CHECK(cgroup_of(spawned->pid, controller) == "/" + rel("app/w1"));
    }
  }
  CHECK(cg().pids(rel("app")) == std::vector<pid_t>{spawned->pid});
  REQUIRE_OK(cg().kill_all(rel("app"), 5000));
  CHECK(killed_by_sigkill(wait_exit(spawned->pid, k_wait_ms)));

  if (v2()) {
    // "app" has controllers enabled for its children: no process may live in it ("no
    // internal process constraint"); clone3 fails as writing cgroup.procs would, and says so.
    auto app_dir = cg().open_dir(rel("app"));
    REQUIRE(app_dir.ok());
    SpawnSpec inner;
    inner.argv = {program("mfserv_test_forker"), "0"};
    inner.cgroup_dir_fd = app_dir->get();
    auto refused = spawn(inner);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().code() == EBUSY);
    CHECK_THAT(refused.error().describe(), Catch::Contains("CLONE_INTO_CGROUP"));
    CHECK(cg().pids(rel("app")).empty());
  }
}

TEST_CASE_METHOD(CgroupFixture, "an OOM kill in a worker leaf is counted in the leaf and the app",
                 "[cgroup]") {
  if (!ready()) {
    return;
  }
  CgroupLimits app;
  CgroupLimits leaf;
  SECTION("memory_max on the app cgroup") {
    app.memory_max = 32 * k_mib;
    app.swap_max = 0;
  }
  SECTION("memory_max on the worker leaf") {
    leaf.memory_max = 32 * k_mib;
    leaf.swap_max = 0;
  }
  REQUIRE_OK(cg().create(rel("app"), app));
  REQUIRE_OK(cg().create(rel("app/w1"), leaf));
  auto watch = cg().watch_oom(rel("app/w1"));
  INFO("watch_oom: " << (watch ? "" : watch.error().describe()));
  REQUIRE(watch.ok());
  auto leaf_before = cg().usage(rel("app/w1")).oom_kills;
  auto app_before = cg().usage(rel("app")).oom_kills;

  Child hog = spawn_in(rel("app/w1"), {program("mfserv_test_hog"), "256"});
  int status = wait_exit(hog.pid, k_wait_ms);
  INFO("hog output: " << read_line(hog.out.get(), 100));
  REQUIRE(killed_by_sigkill(status));

  pollfd p = {watch->get(), POLLIN, 0};
  CHECK(::poll(&p, 1, 5000) == 1);
  drain_oom_watch(watch->get());
  // v1 signals the eventfd as the memcg enters OOM, just before the kill is counted.
  CHECK(eventually([&] { return cg().usage(rel("app/w1")).oom_kills == leaf_before + 1; }, 5000));
  CHECK(cg().usage(rel("app")).oom_kills == app_before + 1);
  if (v2()) {
    CHECK_THAT(kfile("", rel("app"), "memory.events"), Catch::Contains("oom_kill 1"));
  } else {
    CHECK_THAT(kfile("memory", rel("app/w1"), "memory.oom_control"), Catch::Contains("oom_kill 1"));
  }
  CHECK(cg().pids(rel("app")).empty());
}

TEST_CASE_METHOD(CgroupFixture,
                 "kill_all kills forked children and a double-forked setsid grandchild",
                 "[cgroup]") {
  if (!ready()) {
    return;
  }
  REQUIRE_OK(cg().create(rel("app"), CgroupLimits{}));
  REQUIRE_OK(cg().create(rel("app/w1"), CgroupLimits{}));
  REQUIRE_OK(cg().create(rel("app/w2"), CgroupLimits{}));
  Child forker = spawn_in(rel("app/w1"), {program("mfserv_test_forker"), "5"});
  REQUIRE(read_line(forker.out.get(), k_wait_ms) == "forked 5 errno 0");
  Child daemon = spawn_in(rel("app/w2"), {program("mfserv_test_double_forker")});
  auto grandchild_line = read_line(daemon.out.get(), k_wait_ms);
  INFO("double_forker printed '" << grandchild_line << "'");
  REQUIRE(starts_with(grandchild_line, "grandchild "));
  auto grandchild = static_cast<pid_t>(parse_int(grandchild_line.substr(11)).value_or(-1));
  REQUIRE(read_line(daemon.out.get(), k_wait_ms) == "child exited");
  REQUIRE(grandchild > 0);
  CHECK(::getsid(grandchild) != ::getsid(0));  // another session: a group kill misses it
  CHECK(cg().pids(rel("app")).size() == 8);    // forker + 5, double_forker + grandchild

  REQUIRE_OK(cg().kill_all(rel("app"), 5000));
  CHECK(cg().pids(rel("app")).empty());
  CHECK(killed_by_sigkill(wait_exit(forker.pid, k_wait_ms)));
  CHECK(killed_by_sigkill(wait_exit(daemon.pid, k_wait_ms)));
  // We are its subreaper: it is our zombie now, or already gone.
  CHECK(eventually([&] { return process_gone(grandchild); }, 5000));
  REQUIRE_OK(cg().remove(rel("app")));
}

TEST_CASE_METHOD(CgroupFixture, "remove leaves nothing behind", "[cgroup]") {
  if (!ready()) {
    return;
  }
  // Right after kill_all is where an rmdir can meet a cgroup still populated (EBUSY).
  for (int round = 0; round < 5; ++round) {
    REQUIRE_OK(cg().create(rel("app"), CgroupLimits{}));
    REQUIRE_OK(cg().create(rel("app/w1"), CgroupLimits{}));
    REQUIRE_OK(cg().create(rel("app/w2"), CgroupLimits{}));
    Child forker = spawn_in(rel("app/w1"), {program("mfserv_test_forker"), "20"});
    REQUIRE(read_line(forker.out.get(), k_wait_ms) == "forked 20 errno 0");
    REQUIRE_OK(cg().kill_all(rel("app"), 5000));
    REQUIRE_OK(cg().remove(rel("app")));
    for (const auto& dir : kdirs(rel("app"))) {
      INFO("round " << round << ": " << dir);
      CHECK_FALSE(path_exists(dir));
    }
    CHECK(killed_by_sigkill(wait_exit(forker.pid, k_wait_ms)));
  }
  REQUIRE_OK(cg().remove(rel("app")));  // missing is fine

  // remove_if_empty leaves a cgroup that still has a child, and takes an empty one.
  REQUIRE_OK(cg().create(rel("shared/home"), CgroupLimits{}));
  REQUIRE_OK(cg().remove_if_empty(rel("shared")));
  CHECK(is_directory(kdir("memory", rel("shared/home"))));
  REQUIRE_OK(cg().remove(rel("shared/home")));
  REQUIRE_OK(cg().remove_if_empty(rel("shared")));
  for (const auto& dir : kdirs(rel("shared"))) {
    CHECK_FALSE(path_exists(dir));
  }
}

TEST_CASE_METHOD(CgroupFixture, "leftovers of a crashed run are killed and removed", "[cgroup]") {
  if (!ready()) {
    return;
  }
  // The "crashed run": processes in app leaves, one subtree left frozen mid-kill.
  REQUIRE_OK(cg().create(rel("app/w1"), CgroupLimits{}));
  REQUIRE_OK(cg().create(rel("app/w2"), CgroupLimits{}));
  REQUIRE_OK(cg().create(rel("__nginx/w1"), CgroupLimits{}));
  Child forker = spawn_in(rel("app/w1"), {program("mfserv_test_forker"), "3"});
  REQUIRE(read_line(forker.out.get(), k_wait_ms) == "forked 3 errno 0");
  Child daemon = spawn_in(rel("app/w2"), {program("mfserv_test_double_forker")});
  REQUIRE(starts_with(read_line(daemon.out.get(), k_wait_ms), "grandchild "));
  REQUIRE(read_line(daemon.out.get(), k_wait_ms) == "child exited");
  Child other = spawn_in(rel("__nginx/w1"), {program("mfserv_test_forker"), "0"});
  REQUIRE(read_line(other.out.get(), k_wait_ms) == "forked 0 errno 0");
  if (v2()) {
    REQUIRE_OK(write_control(kdir("", rel("app")), "cgroup.freeze", "1"));
  } else if (!kdir("freezer", rel("app")).empty()) {
    REQUIRE_OK(write_control(kdir("freezer", rel("app")), "freezer.state", "FROZEN"));
  }
  std::string root = rel("");
  root.pop_back();

  // The next run: a fresh backend, as Supervisor::prepare does.
  auto next = detect_cgroups();
  REQUIRE(next.ok());
  REQUIRE_OK((*next)->enter_leaf());
  CHECK((*next)->pids(root).size() == 7);  // forker + 3, double_forker + grandchild, other
  REQUIRE_OK((*next)->kill_all(root, 5000));
  REQUIRE_OK((*next)->remove(root));
  for (const auto& dir : kdirs(root)) {
    CHECK_FALSE(path_exists(dir));
  }
  CHECK(killed_by_sigkill(wait_exit(forker.pid, k_wait_ms)));
  CHECK(killed_by_sigkill(wait_exit(daemon.pid, k_wait_ms)));
  CHECK(killed_by_sigkill(wait_exit(other.pid, k_wait_ms)));
}

TEST_CASE_METHOD(CgroupFixture, "pids_max stops a fork bomb", "[cgroup]") {
  if (!ready()) {
    return;
  }
  REQUIRE_OK(cg().create(rel("app"), CgroupLimits{}));
  CgroupLimits leaf;
  leaf.pids_max = 16;
  REQUIRE_OK(cg().create(rel("app/w1"), leaf));
  Child bomb = spawn_in(rel("app/w1"), {program("mfserv_test_forker"), "100000"});
  // pids.max counts tasks: the forker and 15 children; the 16th fork fails with EAGAIN.
  CHECK(read_line(bomb.out.get(), k_wait_ms) == "forked 15 errno " + std::to_string(EAGAIN));
  CHECK(cg().pids(rel("app/w1")).size() == 16);
  CHECK(read_keyed_value(kdir("pids", rel("app/w1")) + "/pids.events", "max").value_or(0) >= 1);
  REQUIRE_OK(cg().kill_all(rel("app"), 5000));
  CHECK(cg().pids(rel("app")).empty());
  CHECK(killed_by_sigkill(wait_exit(bomb.pid, k_wait_ms)));
}

TEST_CASE_METHOD(CgroupFixture, "controllers can be enabled below a base that held processes",
                 "[cgroup]") {
  if (!ready()) {
    return;
  }
  // C9. A delegated cgroup as systemd hands it over: the supervisor inside, no children.
  REQUIRE_OK(cg().create(rel("delegated"), CgroupLimits{}));
  Child supervisor = spawn_in(rel("delegated"), {program("mfserv_test_forker"), "0"});
  REQUIRE(read_line(supervisor.out.get(), k_wait_ms) == "forked 0 errno 0");
  CgroupLimits limits;
  limits.pids_max = 10;
  limits.memory_max = 16 * k_mib;
  if (v2()) {
    auto delegated = make_v2_backend(
        read_mounts().v2, V2Base{cg().display_path(rel("delegated")).substr(1), true, "test"});
    // Without entering a leaf first: the "no internal process" rule answers EBUSY.
    auto st = delegated->create("mfserv/app", limits);
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().code() == EBUSY);
    CHECK_THAT(st.error().message(), Catch::Contains("enter_leaf"));
    REQUIRE_OK(delegated->enter_leaf());
    CHECK(cg().pids(rel("delegated/supervisor")) == std::vector<pid_t>{supervisor.pid});
    CHECK(cgroup_pids(kdir("", rel("delegated"))).empty());
    REQUIRE_OK(delegated->create("mfserv/app", limits));
    CHECK(kfile("", rel("delegated/mfserv/app"), "pids.max") == "10");
  } else {
    // v1 has no such rule: a child cgroup of a populated one takes limits directly.
    REQUIRE_OK(cg().enter_leaf());
    REQUIRE_OK(cg().create(rel("delegated/mfserv/app"), limits));
    CHECK(kfile("pids", rel("delegated/mfserv/app"), "pids.max") == "10");
  }
  REQUIRE_OK(cg().kill_all(rel("delegated"), 5000));
  CHECK(killed_by_sigkill(wait_exit(supervisor.pid, k_wait_ms)));
}

TEST_CASE_METHOD(CgroupFixture, "check describes the host's cgroups", "[cgroup]") {
  if (!ready()) {
    return;
  }
  auto report = cg().check();
  INFO("layout " << report.layout << ", base " << report.base << ", own " << report.own_cgroup);
  CHECK(report.backend == cg().mode());
  for (const char* controller : {"memory", "pids", "cpu"}) {
    bool listed = std::find(report.controllers.begin(), report.controllers.end(), controller) !=
                  report.controllers.end();
    INFO(controller);
    CHECK(listed == expects_controller(controller));
  }
  REQUIRE_OK(cg().create(rel("app/w1"), CgroupLimits{}));
  if (v2()) {
    CHECK(report.layout == "v2");
    CHECK(report.swap_limit == path_exists(kdir("", rel("app/w1")) + "/memory.swap.max"));
    CHECK(report.kill_file == path_exists(kdir("", rel("app/w1")) + "/cgroup.kill"));
  } else {
    bool has_cgroup2 = text_of("/proc/self/mounts").find(" cgroup2 ") != std::string::npos;
    CHECK(report.layout == (has_cgroup2 ? "hybrid" : "v1"));
    CHECK(report.swap_limit ==
          path_exists(kdir("memory", rel("app/w1")) + "/memory.memsw.limit_in_bytes"));
    CHECK_FALSE(report.kill_file);
    CHECK_FALSE(report.delegated);
  }
}

TEST_CASE_METHOD(CgroupFixture, "a delegated base: the supervisor's leaf, nothing written above",
                 "[cgroup]") {
  if (!ready()) {
    return;
  }
  auto report = cg().check();
  bool expect_delegated = env_or("MFSERV_TEST_EXPECT_DELEGATED", "") == "1";
  REQUIRE(report.delegated == expect_delegated);
  std::string own = own_cgroup(v2() ? "" : "memory");
  if (!report.delegated) {
    // No delegation (v1, or v2 at the hierarchy root): enter_leaf moved nothing.
    REQUIRE_OK(cg().enter_leaf());
    CHECK(own_cgroup(v2() ? "" : "memory") == own);
    CHECK(cg().display_path("x") == (v2() ? "/x" : "memory:/x"));
    return;
  }
  // The fixture called enter_leaf(): we are in "<base>/supervisor", the base holds nothing.
  std::string mount = read_mounts().v2;
  CHECK(own == report.base + "/supervisor");
  CHECK(cgroup_pids(mount + report.base).empty());
  std::string parent = report.base.substr(0, report.base.rfind('/'));
  REQUIRE_FALSE(parent.empty());
  auto snapshot = [&] {
    std::string text =
        "parent subtree_control: " + text_of(mount + parent + "/cgroup.subtree_control");
    text += "\nroot subtree_control: " + text_of(mount + "/cgroup.subtree_control");
    for (const auto& name : list_dir(mount + parent)) {
      text += "\n" + name;
    }
    return text;
  };
  std::string before = snapshot();
  CgroupLimits limits;
  limits.memory_max = 32 * k_mib;
  limits.pids_max = 20;
  REQUIRE_OK(cg().create(rel("app/w1"), limits));
  CHECK(is_directory(mount + report.base + "/" + rel("app/w1")));
  CHECK(cg().display_path(rel("app")) == report.base + "/" + rel("app"));
  CHECK(snapshot() == before);

  // Detected again from inside the leaf: the same base.
  auto again = detect_cgroups();
  REQUIRE(again.ok());
  CHECK((*again)->check().base == report.base);

  // The xattr systemd sets (user.delegate) is enough without the environment variable.
  std::string saved_env = env_or("MFSERV_CGROUP_DELEGATED", "");
  ::unsetenv("MFSERV_CGROUP_DELEGATED");
  REQUIRE(::setxattr((mount + report.base).c_str(), "user.delegate", "1", 1, 0) == 0);
  auto by_xattr = detect_cgroups();
  ::removexattr((mount + report.base).c_str(), "user.delegate");
  auto by_nothing = detect_cgroups();
  if (!saved_env.empty()) {
    ::setenv("MFSERV_CGROUP_DELEGATED", saved_env.c_str(), 1);
  }
  REQUIRE(by_xattr.ok());
  CHECK((*by_xattr)->check().delegated);
  CHECK((*by_xattr)->check().delegation_source == "user.delegate xattr");
  CHECK((*by_xattr)->check().base == report.base);
  REQUIRE(by_nothing.ok());
  CHECK_FALSE((*by_nothing)->check().delegated);
  CHECK(snapshot() == before);
}
