// tests/emu/simt.cpp — the SIMT emulator's engine: fibers, the per-block cooperative scheduler, block
// barriers, warp and block collectives, divergence/deadlock detection, and the CUDA runtime API on host
// memory. See simt.hpp for the model and README.md for what is and is not emulated.
#include "cuda_runtime.h"

#include <cxxabi.h>
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define SIMT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIMT_ASAN 1
#endif
#endif
#ifndef SIMT_ASAN
#define SIMT_ASAN 0
#endif
#if SIMT_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

// Context switch: a hand-written x86-64 switch (callee-saved registers, MXCSR and the x87 control word;
// no signal mask, no system call) is ~30x faster than swapcontext, which matters: a block Prim step is
// a dozen synchronisation points for each of up to 1024 threads. Elsewhere (or with -DSIMT_USE_UCONTEXT,
// to compare) ucontext is used.
#if defined(__x86_64__) && !defined(SIMT_USE_UCONTEXT)
#define SIMT_UCONTEXT 0
extern "C" void simt_ctx_switch(void** save_sp, void* load_sp);
extern "C" void simt_ctx_entry();
// simt_ctx_switch(save, load): pushes the callee-saved state on the current stack, stores the stack
// pointer to *save, switches to load and pops the state saved there. A new fiber's stack is prepared
// so that the pops yield r12 = argument, r13 = function and the return goes to simt_ctx_entry.
asm(R"(
    .text
    .p2align 4
    .globl simt_ctx_switch
    .type simt_ctx_switch, @function
simt_ctx_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size simt_ctx_switch, .-simt_ctx_switch

    .p2align 4
    .globl simt_ctx_entry
    .type simt_ctx_entry, @function
simt_ctx_entry:
    movq %r12, %rdi
    andq $-16, %rsp
    callq *%r13
    ud2
    .size simt_ctx_entry, .-simt_ctx_entry
)");
#else
#define SIMT_UCONTEXT 1
#include <ucontext.h>
#endif

namespace simt {
namespace detail {
thread_info* g_thread = nullptr;
block_info g_block{};
}  // namespace detail
}  // namespace simt

namespace {

using namespace simt::detail;

enum class tstate : unsigned char { ready, blocked, exited };
enum class wscope : unsigned char { none, block, warp };

struct fiber_thread {
  thread_info info;
  tstate state = tstate::exited;
  wscope scope = wscope::none;
  int kind = 0;  // block barrier kind 0..3, -1 for a block collective
  int pred = 0, result = 0;
  const char* name = nullptr;   // the barrier or collective it waits at
  combine_fn fn = nullptr;
  unsigned mask = 0;
  const void* tag = nullptr;
  const void* site = nullptr;   // where the kernel called into the emulator
  void* sp = nullptr;
#if SIMT_UCONTEXT
  ucontext_t uc;
#endif
  char* stack_lo = nullptr;
  std::size_t stack_size = 0;
  void* asan_fake = nullptr;
};

enum class policy { forward, reverse, random };

struct emulator {
  std::mutex launch_mutex;
  // The launch being run.
  const void* func = nullptr;
  const char* signature = nullptr;
  invoke_fn invoke = nullptr;
  void** args = nullptr;
  unsigned n = 0, nwarps = 0;
  std::vector<fiber_thread> th;
  std::vector<slot> slots;
  std::vector<unsigned> warp_wait, warp_exited, warp_exist;
  std::vector<unsigned> order;
  std::vector<unsigned> warp_order;
  unsigned lane_order[32];
  unsigned live = 0, arrived = 0;
  unsigned long long epoch = 1, block_serial = 0;  // epoch: completed __syncthreads* of the block
  unsigned long long phase = 0;                    // completed block-wide barriers and collectives
  bool progress = false;
  fiber_thread* cur = nullptr;
  void* sched_sp = nullptr;
#if SIMT_UCONTEXT
  ucontext_t sched_uc;
#endif
  const void* main_stack_lo = nullptr;
  std::size_t main_stack_size = 0;
  void* sched_fake = nullptr;
  // Fiber stacks (reused across blocks and launches), each above a PROT_NONE guard region large enough
  // that a big frame cannot jump over it into the neighbouring stack.
  std::vector<char*> stacks;
  std::size_t stack_bytes = 0, page = 4096, guard = 256 * 1024;
  // Configuration (environment, read at the first launch).
  policy sched = policy::forward;
  unsigned long long seed = 1;
  std::mt19937_64 rng{1};
  unsigned char poison = 0xff;
};

emulator& S() {
  static emulator* e = new emulator;  // never destroyed: usable from atexit handlers and late destructors
  return *e;
}

thread_local bool tl_in_kernel = false;

// ---------------------------------------------------------------------------------------------------
// Diagnostics.
std::string demangle(const char* s) {
  int status = 0;
  char* d = abi::__cxa_demangle(s, nullptr, nullptr, &status);
  std::string out = (status == 0 && d) ? d : s;
  std::free(d);
  return out;
}

/// The function symbols of an ELF file (its .symtab, else .dynsym), for naming kernels and code locations
/// in reports: dladdr alone sees only exported symbols, not static or anonymous-namespace kernels.
struct elf_symbols {
  struct sym {
    std::uintptr_t lo, hi;
    std::string name;
  };
  std::vector<sym> syms;  // sorted by lo
  bool relative = true;   // ET_DYN: values are offsets from the load address
};

const elf_symbols& symbols_of(const std::string& file) {
  static std::unordered_map<std::string, std::unique_ptr<elf_symbols>> cache;
  auto& slot_ = cache[file];
  if (slot_) return *slot_;
  slot_ = std::make_unique<elf_symbols>();
  elf_symbols& out = *slot_;
  const int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  struct stat st {};
  void* map = (fstat(fd, &st) == 0 && st.st_size > static_cast<off_t>(sizeof(Elf64_Ehdr)))
                  ? mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0)
                  : MAP_FAILED;
  close(fd);
  if (map == MAP_FAILED) return out;
  const auto* base = static_cast<const unsigned char*>(map);
  const std::size_t size = static_cast<std::size_t>(st.st_size);
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(base);
  if (std::memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_ident[EI_CLASS] == ELFCLASS64 &&
      eh->e_shoff + static_cast<std::size_t>(eh->e_shnum) * sizeof(Elf64_Shdr) <= size) {
    out.relative = eh->e_type == ET_DYN;
    const auto* sh = reinterpret_cast<const Elf64_Shdr*>(base + eh->e_shoff);
    for (const Elf32_Word want : {static_cast<Elf32_Word>(SHT_SYMTAB), static_cast<Elf32_Word>(SHT_DYNSYM)}) {
      for (unsigned i = 0; i < eh->e_shnum; ++i) {
        if (sh[i].sh_type != want || sh[i].sh_link >= eh->e_shnum) continue;
        const Elf64_Shdr& strtab = sh[sh[i].sh_link];
        if (sh[i].sh_offset + sh[i].sh_size > size || strtab.sh_offset + strtab.sh_size > size) continue;
        const auto* sy = reinterpret_cast<const Elf64_Sym*>(base + sh[i].sh_offset);
        const std::size_t count = sh[i].sh_size / sizeof(Elf64_Sym);
        for (std::size_t k = 0; k < count; ++k)
          if (ELF64_ST_TYPE(sy[k].st_info) == STT_FUNC && sy[k].st_value && sy[k].st_size &&
              sy[k].st_name < strtab.sh_size)
            out.syms.push_back({sy[k].st_value, sy[k].st_value + sy[k].st_size,
                                reinterpret_cast<const char*>(base + strtab.sh_offset + sy[k].st_name)});
      }
      if (!out.syms.empty()) break;
    }
  }
  munmap(map, size);
  std::sort(out.syms.begin(), out.syms.end(), [](const auto& a, const auto& b) { return a.lo < b.lo; });
  return out;
}

/// The demangled name of the function containing addr ("" if unknown); *offset: addr's offset in it.
std::string function_at(const void* addr, std::uintptr_t* offset = nullptr) {
  Dl_info info;
  if (!addr || !dladdr(addr, &info) || !info.dli_fname) return {};
  const elf_symbols& es = symbols_of(info.dli_fname[0] ? info.dli_fname : "/proc/self/exe");
  const std::uintptr_t a = reinterpret_cast<std::uintptr_t>(addr);
  const std::uintptr_t rel = es.relative ? a - reinterpret_cast<std::uintptr_t>(info.dli_fbase) : a;
  auto it = std::upper_bound(es.syms.begin(), es.syms.end(), rel, [](std::uintptr_t v, const auto& s) { return v < s.lo; });
  if (it != es.syms.begin() && rel < (--it)->hi) {
    if (offset) *offset = rel - it->lo;
    return demangle(it->name.c_str());
  }
  if (info.dli_sname) {
    if (offset) *offset = a - reinterpret_cast<std::uintptr_t>(info.dli_saddr);
    return demangle(info.dli_sname);
  }
  return {};
}

std::string kernel_name() {
  emulator& e = S();
  std::uintptr_t off = 1;
  const std::string name = function_at(e.func, &off);
  if (!name.empty() && off == 0) return name;
  return e.signature ? e.signature : "?";
}

/// "file+0xoffset (in function)" for a return address (addr2line -f -C -e file offset gives the line).
std::string code_location(const void* site) {
  Dl_info info;
  if (!site || !dladdr(site, &info) || !info.dli_fname) return {};
  char buf[64];
  std::snprintf(buf, sizeof buf, "+0x%lx",
                static_cast<unsigned long>(reinterpret_cast<std::uintptr_t>(site) -
                                           reinterpret_cast<std::uintptr_t>(info.dli_fbase) - 1));
  std::string s = std::string(info.dli_fname) + buf;
  const std::string fn = function_at(site);
  if (!fn.empty()) s += " in " + (fn.size() > 160 ? fn.substr(0, 157) + "..." : fn);
  return s;
}

std::string describe_wait(const fiber_thread& t) {
  char buf[96];
  if (t.state == tstate::exited) return "exited";
  if (t.state == tstate::ready) return "runnable";
  std::string s = "waiting at ";
  s += t.name ? t.name : "?";
  if (t.scope == wscope::warp) {
    std::snprintf(buf, sizeof buf, " (mask 0x%08x)", t.mask);
    s += buf;
  }
  const std::string at = code_location(t.site);
  if (!at.empty()) s += "  [called at " + at + "]";
  return s;
}

void print_context(FILE* f) {
  emulator& e = S();
  if (tl_in_kernel) {
    const block_info& b = g_block;
    std::fprintf(f, " in kernel %s\n  block (%u,%u,%u) of grid (%u,%u,%u), block dim (%u,%u,%u)", kernel_name().c_str(),
                 b.idx.x, b.idx.y, b.idx.z, b.grid.x, b.grid.y, b.grid.z, b.dim.x, b.dim.y, b.dim.z);
    if (e.cur) {
      const thread_info& t = e.cur->info;
      std::fprintf(f, ", thread (%u,%u,%u) [warp %u, lane %u]", t.idx.x, t.idx.y, t.idx.z, t.warp, t.lane);
    }
  }
}

[[noreturn]] void vfatal(const char* fmt, va_list ap) {
  std::fflush(stdout);
  std::fprintf(stderr, "\nsimt: ERROR");
  print_context(stderr);
  std::fprintf(stderr, ":\n  ");
  std::vfprintf(stderr, fmt, ap);
  std::fprintf(stderr, "\n  (code locations: addr2line -f -C -e <file> <offset>)\n");
  std::fflush(stderr);
  std::abort();
}

std::string thread_name(const fiber_thread& t) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "thread (%u,%u,%u) [warp %u, lane %u]", t.info.idx.x, t.info.idx.y, t.info.idx.z,
                t.info.warp, t.info.lane);
  return buf;
}

/// Every thread's state, consecutive threads with the same state on one line.
std::string block_state() {
  emulator& e = S();
  std::string out;
  unsigned i = 0;
  while (i < e.n) {
    const std::string d = describe_wait(e.th[i]);
    unsigned j = i + 1;
    while (j < e.n && describe_wait(e.th[j]) == d) ++j;
    char buf[64];
    if (j - i == 1) std::snprintf(buf, sizeof buf, "    thread %u: ", i);
    else std::snprintf(buf, sizeof buf, "    threads %u-%u: ", i, j - 1);
    out += buf + d + "\n";
    i = j;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Configuration, stacks, context switches.
bool parse_schedule(const char* spec) {
  emulator& e = S();
  const std::string v = spec ? spec : "";
  if (v == "forward" || v.empty()) {
    e.sched = policy::forward;
  } else if (v == "reverse") {
    e.sched = policy::reverse;
  } else if (v == "random" || (v.rfind("random:", 0) == 0 && v.size() > 7)) {
    char* end = nullptr;
    const unsigned long long seed = v.size() > 7 ? std::strtoull(v.c_str() + 7, &end, 0) : 1;
    if (end && *end) return false;
    e.sched = policy::random;
    e.seed = seed;
    e.rng.seed(seed);
  } else {
    return false;
  }
  return true;
}

void configure_once();
void configure() {
  static std::once_flag once;
  std::call_once(once, configure_once);
}
void configure_once() {
  emulator& e = S();
  if (const char* s = std::getenv("SIMT_SCHEDULE"))
    if (!parse_schedule(s)) {
      std::fprintf(stderr, "simt: SIMT_SCHEDULE=%s: expected forward, reverse, random or random:<seed>\n", s);
      std::exit(2);
    }
  std::size_t kb = SIMT_ASAN ? 512 : 64;  // ASan's redzones make frames several times larger
  if (const char* s = std::getenv("SIMT_STACK_KB")) kb = std::strtoul(s, nullptr, 0);
  if (kb < 16) kb = 16;
  e.page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  e.guard = (e.guard + e.page - 1) / e.page * e.page;
  e.stack_bytes = (kb * 1024 + e.page - 1) / e.page * e.page;
  if (const char* s = std::getenv("SIMT_POISON")) e.poison = static_cast<unsigned char>(std::strtoul(s, nullptr, 0));
  if (std::getenv("SIMT_VERBOSE"))
    std::fprintf(stderr, "simt: schedule %s (seed %llu), fiber stacks %zu KiB, poison 0x%02x\n",
                 e.sched == policy::forward ? "forward" : e.sched == policy::reverse ? "reverse" : "random", e.seed,
                 e.stack_bytes / 1024, e.poison);
}

#if !SIMT_ASAN
struct sigaction g_prev_segv;
void segv_handler(int sig, siginfo_t* si, void* uc) {
  emulator& e = S();
  const char* a = static_cast<const char*>(si->si_addr);
  for (char* lo : e.stacks)
    if (a >= lo - e.guard && a < lo) {
      char buf[160];
      const int len = std::snprintf(buf, sizeof buf,
                                    "\nsimt: fiber stack overflow (%zu KiB per CUDA thread): set SIMT_STACK_KB higher\n",
                                    e.stack_bytes / 1024);
      if (len > 0) (void)!write(2, buf, static_cast<std::size_t>(len));
      break;
    }
  // Hand the fault to whoever handled it before (Catch2 reports the test), or the default action.
  sigaction(SIGSEGV, &g_prev_segv, nullptr);
  (void)sig, (void)uc;
}
/// (Re)installs the overflow reporter in front of the current SIGSEGV handler (test frameworks swap
/// their own handlers in and out around each test).
void install_segv_handler() {
  struct sigaction now {};
  sigaction(SIGSEGV, nullptr, &now);
  if ((now.sa_flags & SA_SIGINFO) && now.sa_sigaction == segv_handler) return;
  static char altstack[64 * 1024];
  stack_t ss{};
  ss.ss_sp = altstack;
  ss.ss_size = sizeof altstack;
  sigaltstack(&ss, nullptr);
  struct sigaction sa {};
  sa.sa_sigaction = segv_handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &g_prev_segv);
}
#endif

char* stack_for(unsigned i) {
  emulator& e = S();
  while (e.stacks.size() <= i) {
    const std::size_t total = e.stack_bytes + e.guard;
    void* p = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) simt::detail::fatal("cannot map a %zu-byte fiber stack", total);
    mprotect(p, e.guard, PROT_NONE);  // guard below the stack: an overflow faults instead of corrupting
    e.stacks.push_back(static_cast<char*>(p) + e.guard);
  }
  return e.stacks[i];
}

void fiber_main(void* p);

#if SIMT_UCONTEXT
void fiber_trampoline(unsigned hi, unsigned lo) {
  fiber_main(reinterpret_cast<void*>((static_cast<std::uintptr_t>(hi) << 32) | lo));
}
#endif

void prepare(fiber_thread& t) {
#if SIMT_ASAN
  __asan_unpoison_memory_region(t.stack_lo, t.stack_size);  // stale redzones of the previous block
#endif
#if SIMT_UCONTEXT
  getcontext(&t.uc);
  t.uc.uc_stack.ss_sp = t.stack_lo;
  t.uc.uc_stack.ss_size = t.stack_size;
  t.uc.uc_link = nullptr;
  const std::uintptr_t a = reinterpret_cast<std::uintptr_t>(&t);
  makecontext(&t.uc, reinterpret_cast<void (*)()>(fiber_trampoline), 2, static_cast<unsigned>(a >> 32),
              static_cast<unsigned>(a & 0xffffffffu));
#else
  auto* sp = reinterpret_cast<std::uint64_t*>(reinterpret_cast<std::uintptr_t>(t.stack_lo + t.stack_size) &
                                              ~std::uintptr_t(15));
  sp -= 10;  // the frame simt_ctx_switch pops (see its comment); keeps the entry call 16-byte aligned
  std::uint32_t mxcsr = 0;
  std::uint16_t fpcw = 0;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpcw));
  sp[0] = mxcsr | (static_cast<std::uint64_t>(fpcw) << 32);
  sp[1] = sp[2] = 0;                                        // r15, r14
  sp[3] = reinterpret_cast<std::uint64_t>(&fiber_main);     // r13
  sp[4] = reinterpret_cast<std::uint64_t>(&t);              // r12
  sp[5] = sp[6] = 0;                                        // rbx, rbp (0 ends frame-pointer backtraces)
  sp[7] = reinterpret_cast<std::uint64_t>(&simt_ctx_entry);  // return address
  sp[8] = sp[9] = 0;
  t.sp = sp;
#endif
}

/// Scheduler -> fiber t; returns when t blocks, yields or exits.
void resume(fiber_thread& t) {
  emulator& e = S();
  e.cur = &t;
  g_thread = &t.info;
#if SIMT_ASAN
  __sanitizer_start_switch_fiber(&e.sched_fake, t.stack_lo, t.stack_size);
#endif
#if SIMT_UCONTEXT
  swapcontext(&e.sched_uc, &t.uc);
#else
  simt_ctx_switch(&e.sched_sp, t.sp);
#endif
#if SIMT_ASAN
  __sanitizer_finish_switch_fiber(e.sched_fake, nullptr, nullptr);
#endif
  e.cur = nullptr;
  g_thread = nullptr;
}

/// Fiber t -> scheduler. exiting: t's stack is abandoned (it is prepared afresh for the next block).
void suspend(fiber_thread& t, bool exiting) {
  emulator& e = S();
#if SIMT_ASAN
  __sanitizer_start_switch_fiber(exiting ? nullptr : &t.asan_fake, e.main_stack_lo, e.main_stack_size);
#else
  (void)exiting;
#endif
#if SIMT_UCONTEXT
  swapcontext(&t.uc, &e.sched_uc);
#else
  simt_ctx_switch(&t.sp, e.sched_sp);
#endif
#if SIMT_ASAN
  __sanitizer_finish_switch_fiber(t.asan_fake, &e.main_stack_lo, &e.main_stack_size);
#endif
}

fiber_thread& current(const char* what) {
  fiber_thread* t = S().cur;
  if (!t) simt::detail::fatal("%s called outside a kernel", what);
  return *t;
}

// ---------------------------------------------------------------------------------------------------
// Block barriers and block collectives.
constexpr unsigned long long tag_magic = 0x73696d7454616721ull;
const char* const barrier_names[4] = {"__syncthreads()", "__syncthreads_count()", "__syncthreads_and()",
                                      "__syncthreads_or()"};

[[noreturn]] void diverged(const char* what, const fiber_thread& a, const fiber_thread& b) {
  simt::detail::fatal("%s:\n    %s %s\n    %s %s\n  every thread of the block:\n%s", what, thread_name(a).c_str(),
                      describe_wait(a).c_str(), thread_name(b).c_str(), describe_wait(b).c_str(),
                      block_state().c_str());
}

/// Every live thread waits at block scope: check they agree, compute, release them.
void complete_block() {
  emulator& e = S();
  fiber_thread* first = nullptr;
  int count = 0;
  for (unsigned i = 0; i < e.n; ++i) {
    fiber_thread& u = e.th[i];
    if (u.state == tstate::exited) continue;
    if (!first) first = &u;
    else if (u.kind != first->kind || u.fn != first->fn || u.tag != first->tag)
      diverged("threads of the block wait at different block-wide barriers", *first, u);
    count += u.pred != 0;
  }
  int result = 0;
  if (first->kind >= 0) {
    result = first->kind == 1 ? count : first->kind == 2 ? (count == static_cast<int>(e.live)) : first->kind == 3 ? (count > 0) : 0;
    ++e.epoch;
  } else {
    if (e.live != e.n)
      simt::detail::fatal("%s is block-wide, but %u of the block's %u threads have exited:\n%s", first->name,
                          e.n - e.live, e.n, block_state().c_str());
    first->fn(group_view{e.slots.data(), e.n, 0xffffffffu});
    if (auto* tag = static_cast<storage_tag*>(const_cast<void*>(first->tag))) {
      tag->magic = tag_magic;
      tag->block = e.block_serial;
      tag->epoch = e.epoch;
    }
  }
  for (unsigned i = 0; i < e.n; ++i) {
    fiber_thread& u = e.th[i];
    if (u.state == tstate::exited) continue;
    u.state = tstate::ready;
    u.scope = wscope::none;
    u.result = result;
  }
  e.arrived = 0;
  ++e.phase;
}

void arrive_block(fiber_thread& t) {
  emulator& e = S();
  t.state = tstate::blocked;
  t.scope = wscope::block;
  e.progress = true;
  if (++e.arrived == e.live) complete_block();
  suspend(t, false);
}

// ---------------------------------------------------------------------------------------------------
// Warp collectives.
inline unsigned ctz(unsigned m) { return static_cast<unsigned>(__builtin_ctz(m)); }

/// All lanes of mask wait at a warp collective: if they all wait at this one (same mask), complete it.
void try_complete_warp(fiber_thread& t) {
  emulator& e = S();
  const unsigned w = t.info.warp, mask = t.mask;
  fiber_thread* base = &e.th[static_cast<std::size_t>(w) * 32];
  for (unsigned m = mask; m; m &= m - 1)
    if (base[ctz(m)].mask != mask) return;  // some lane waits at another collective first
  for (unsigned m = mask; m; m &= m - 1) {
    const fiber_thread& u = base[ctz(m)];
    if (u.fn != t.fn || std::strcmp(u.name, t.name) != 0)
      diverged("lanes of a warp wait at different warp collectives with the same mask", t, u);
  }
  if (t.fn) t.fn(group_view{&e.slots[static_cast<std::size_t>(w) * 32], 32, mask});
  for (unsigned m = mask; m; m &= m - 1) {
    fiber_thread& u = base[ctz(m)];
    u.state = tstate::ready;
    u.scope = wscope::none;
  }
  e.warp_wait[w] &= ~mask;
}

void warp_collective_at(const char* name, combine_fn fn, unsigned mask, const slot& mine, const void* site) {
  emulator& e = S();
  fiber_thread& t = current(name);
  t.site = site;
  t.name = name;
  const unsigned w = t.info.warp, bit = 1u << t.info.lane;
  if (!(mask & bit))
    simt::detail::fatal("%s: mask 0x%08x does not name the calling lane %u [called at %s]", name, mask, t.info.lane,
                        code_location(site).c_str());
  if (mask & ~e.warp_exist[w])
    simt::detail::fatal("%s: mask 0x%08x names lanes that do not exist (this warp has lanes 0x%08x) [called at %s]",
                        name, mask, e.warp_exist[w], code_location(site).c_str());
  if (mask & e.warp_exited[w])
    simt::detail::fatal("%s: mask 0x%08x names lanes that have exited (0x%08x) [called at %s]", name, mask,
                        mask & e.warp_exited[w], code_location(site).c_str());
  e.slots[t.info.linear] = mine;
  t.fn = fn;
  t.mask = mask;
  t.scope = wscope::warp;
  t.state = tstate::blocked;
  e.progress = true;
  e.warp_wait[w] |= bit;
  if ((e.warp_wait[w] & mask) == mask) try_complete_warp(t);
  suspend(t, false);
}

// ---------------------------------------------------------------------------------------------------
// Built-in warp operations.
template <int Mode>
void shfl_combine(const group_view& g) {
  const unsigned size = static_cast<unsigned>(g.s[ctz(g.mask)].b >> 8);
  for (unsigned m = g.mask; m; m &= m - 1) {
    const unsigned l = ctz(m);
    const slot& me = g.s[l];
    if (static_cast<unsigned>(me.b >> 8) != size)
      simt::detail::fatal("shuffle: lanes of mask 0x%08x shuffle values of different sizes", g.mask);
    const unsigned width = static_cast<unsigned>(me.b & 0xff);
    if (width == 0 || width > 32 || (width & (width - 1)))
      simt::detail::fatal("shuffle: width %u is not a power of 2 in [1, 32] (lane %u)", width, l);
    // The PTX shfl.sync rule: b is taken modulo 32; a source outside the lane's segment of `width`
    // lanes (below it for up, above it for down and xor) means the lane keeps its own value.
    const unsigned b = static_cast<unsigned>(me.a) & 31u, lo = l & ~(width - 1), hi = lo + width - 1;
    int j;
    bool ok;
    switch (Mode) {
      case 0: j = static_cast<int>(lo | (b & (width - 1))), ok = true; break;
      case 1: j = static_cast<int>(l) - static_cast<int>(b), ok = j >= static_cast<int>(lo); break;
      case 2: j = static_cast<int>(l + b), ok = j <= static_cast<int>(hi); break;
      default: j = static_cast<int>(l ^ b), ok = j <= static_cast<int>(hi); break;
    }
    if (!ok) j = static_cast<int>(l);
    if (g.mask & (1u << j)) std::memcpy(me.out, g.s[j].in, size);
    else std::memset(me.out, S().poison, size);  // reading a lane outside the mask: undefined on the device
  }
}
const char* const shfl_names[4] = {"__shfl_sync()", "__shfl_up_sync()", "__shfl_down_sync()", "__shfl_xor_sync()"};
const combine_fn shfl_fns[4] = {&shfl_combine<0>, &shfl_combine<1>, &shfl_combine<2>, &shfl_combine<3>};

void vote_combine(const group_view& g) {
  const long long op = g.s[ctz(g.mask)].b;
  unsigned bits = 0;
  for (unsigned m = g.mask; m; m &= m - 1) {
    if (g.s[ctz(m)].b != op) simt::detail::fatal("vote: lanes mix __ballot_sync/__any_sync/__all_sync");
    if (g.s[ctz(m)].a) bits |= 1u << ctz(m);
  }
  const unsigned r = op == 0 ? bits : op == 1 ? (bits != 0) : (bits == g.mask);
  for (unsigned m = g.mask; m; m &= m - 1) *static_cast<unsigned*>(g.s[ctz(m)].out) = r;
}
const char* const vote_names[3] = {"__ballot_sync()", "__any_sync()", "__all_sync()"};

void reduce_combine(const group_view& g) {
  const long long op = g.s[ctz(g.mask)].b;
  bool first = true;
  unsigned r = 0;
  for (unsigned m = g.mask; m; m &= m - 1) {
    const slot& s = g.s[ctz(m)];
    if (s.b != op) simt::detail::fatal("__reduce_*_sync: lanes of mask 0x%08x call different reductions", g.mask);
    const unsigned v = static_cast<unsigned>(s.a);
    if (first) {
      r = v, first = false;
      continue;
    }
    switch (op) {
      case 0: r += v; break;
      case 1: r = static_cast<int>(v) < static_cast<int>(r) ? v : r; break;
      case 2: r = static_cast<int>(v) > static_cast<int>(r) ? v : r; break;
      case 3: r = v < r ? v : r; break;
      case 4: r = v > r ? v : r; break;
      case 5: r &= v; break;
      case 6: r |= v; break;
      default: r ^= v; break;
    }
  }
  for (unsigned m = g.mask; m; m &= m - 1) *static_cast<unsigned*>(g.s[ctz(m)].out) = r;
}
const char* const reduce_names[8] = {"__reduce_add_sync()", "__reduce_min_sync()", "__reduce_max_sync()",
                                     "__reduce_min_sync()", "__reduce_max_sync()", "__reduce_and_sync()",
                                     "__reduce_or_sync()",  "__reduce_xor_sync()"};

void match_combine(const group_view& g) {
  const long long op = g.s[ctz(g.mask)].b & 1, size = g.s[ctz(g.mask)].b >> 8;
  bool all_equal = true;
  for (unsigned m = g.mask; m; m &= m - 1) {
    const slot& s = g.s[ctz(m)];
    if ((s.b & 1) != op || (s.b >> 8) != size)
      simt::detail::fatal("__match_*_sync: lanes of mask 0x%08x differ in operation or value size", g.mask);
    if (std::memcmp(s.in, g.s[ctz(g.mask)].in, static_cast<std::size_t>(size)) != 0) all_equal = false;
  }
  for (unsigned m = g.mask; m; m &= m - 1) {
    const slot& s = g.s[ctz(m)];
    unsigned r = 0;
    if (op == 0) {
      for (unsigned k = g.mask; k; k &= k - 1)
        if (std::memcmp(s.in, g.s[ctz(k)].in, static_cast<std::size_t>(size)) == 0) r |= 1u << ctz(k);
    } else {
      r = all_equal ? g.mask : 0u;
      if (s.aux) *static_cast<int*>(const_cast<void*>(s.aux)) = all_equal;
    }
    *static_cast<unsigned*>(s.out) = r;
  }
}

// ---------------------------------------------------------------------------------------------------
// Threads and blocks.
void thread_exit(fiber_thread& t) {
  emulator& e = S();
  t.state = tstate::exited;
  t.scope = wscope::none;
  --e.live;
  e.progress = true;
  const unsigned w = t.info.warp, bit = 1u << t.info.lane;
  e.warp_exited[w] |= bit;
  for (unsigned m = e.warp_wait[w]; m; m &= m - 1) {
    const fiber_thread& u = e.th[static_cast<std::size_t>(w) * 32 + ctz(m)];
    if (u.mask & bit)
      simt::detail::fatal("lane %u exits while %s waits at %s with mask 0x%08x, which names it (it can never "
                          "complete):\n%s",
                          t.info.lane, thread_name(u).c_str(), u.name, u.mask, block_state().c_str());
  }
  if (e.arrived && e.arrived == e.live) complete_block();  // exited threads count as arrived
  suspend(t, true);
  std::abort();  // an exited fiber is never resumed
}

void fiber_main(void* p) {
  fiber_thread& t = *static_cast<fiber_thread*>(p);
  emulator& e = S();
#if SIMT_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &e.main_stack_lo, &e.main_stack_size);
#endif
  try {
    e.invoke(e.func, e.args);
  } catch (const std::exception& x) {
    simt::detail::fatal("an exception escaped the kernel (a bug: device code cannot throw): %s", x.what());
  } catch (...) {
    simt::detail::fatal("an exception escaped the kernel (a bug: device code cannot throw)");
  }
  thread_exit(t);
}

void run_block(uint3 b) {
  emulator& e = S();
  g_block.idx = b;
  ++e.block_serial;
  if (g_block.smem_bytes) std::memset(g_block.smem, e.poison, g_block.smem_bytes);  // undefined on the device
  e.live = e.n;
  e.arrived = 0;
  ++e.phase;
  std::fill(e.warp_wait.begin(), e.warp_wait.end(), 0u);
  std::fill(e.warp_exited.begin(), e.warp_exited.end(), 0u);
  for (unsigned i = 0; i < e.n; ++i) {
    fiber_thread& t = e.th[i];
    t.state = tstate::ready;
    t.scope = wscope::none;
    t.mask = 0;
    prepare(t);
  }
  // forward / reverse: rounds in which every ready thread runs once (to its next synchronisation point),
  // in thread order or reverse thread order. random: at the start of every phase (block start, each
  // completed block-wide barrier) a coin decides between rounds in a random thread order and running
  // the warps one at a time, in a random warp order, each as far as it can (to the next block-wide
  // barrier): the most skewed interleaving, which exposes races between warps that span several
  // warp-level synchronisation points (e.g. a reused shared buffer a lagging warp still reads).
  unsigned long long idle = 0, seen_phase = ~0ull;
  bool serial = false;
  e.warp_order.resize(e.nwarps);
  for (;;) {
    bool ran = false;
    e.progress = false;
    if (e.sched == policy::random) {
      if (e.phase != seen_phase) {
        seen_phase = e.phase;
        serial = e.nwarps > 1 && (e.rng() & 1);
        for (unsigned w = 0; w < e.nwarps; ++w) e.warp_order[w] = w;
        for (unsigned i = e.nwarps; i > 1; --i) std::swap(e.warp_order[i - 1], e.warp_order[e.rng() % i]);
      }
      if (!serial)
        for (unsigned i = e.n; i > 1; --i) std::swap(e.order[i - 1], e.order[e.rng() % i]);
    }
    if (serial) {
      for (unsigned i = 0; i < 32; ++i) e.lane_order[i] = i;
      for (unsigned i = 32; i > 1; --i) std::swap(e.lane_order[i - 1], e.lane_order[e.rng() % i]);
      for (unsigned k = 0; k < e.nwarps && !ran; ++k) {  // one round of the first warp that can run
        const unsigned w = e.warp_order[k];
        for (unsigned l : e.lane_order) {
          const unsigned i = w * 32 + l;
          if (i >= e.n || e.th[i].state != tstate::ready) continue;
          ran = true;
          resume(e.th[i]);
        }
      }
    } else {
      for (unsigned k = 0; k < e.n; ++k) {
        fiber_thread& t = e.th[e.order[k]];
        if (t.state != tstate::ready) continue;
        ran = true;
        resume(t);
      }
    }
    if (e.live == 0) break;
    if (!ran)
      simt::detail::fatal("deadlock: no thread of the block can proceed (a barrier some thread never reaches, "
                          "or a warp collective whose lanes wait elsewhere):\n%s",
                          block_state().c_str());
    idle = e.progress ? 0 : idle + 1;
    if (idle > 1000000)
      simt::detail::fatal("livelock: every runnable thread has spun in __nanosleep() for 10^6 rounds:\n%s",
                          block_state().c_str());
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// The device-side entry points declared in simt.hpp.
namespace simt {
namespace detail {

void fatal(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfatal(fmt, ap);
}

int block_barrier(int kind, int pred) {
  fiber_thread& t = current(barrier_names[kind & 3]);
  t.site = __builtin_return_address(0);
  t.name = barrier_names[kind & 3];
  t.kind = kind & 3;
  t.pred = pred;
  t.fn = nullptr;
  t.tag = nullptr;
  arrive_block(t);
  return t.result;
}

void block_collective(const char* name, combine_fn fn, storage_tag* tag, const slot& mine) {
  emulator& e = S();
  fiber_thread& t = current(name);
  t.site = __builtin_return_address(0);
  t.name = name;
  if (tag && tag->magic == tag_magic && tag->block == e.block_serial && tag->epoch == e.epoch)
    fatal("%s: its TempStorage (%p) was used by a collective that completed after the last __syncthreads(): "
          "reusing it without a barrier is a race with real CUB [called at %s]",
          name, static_cast<void*>(tag), code_location(t.site).c_str());
  e.slots[t.info.linear] = mine;
  t.kind = -1;
  t.pred = 0;
  t.fn = fn;
  t.tag = tag;
  arrive_block(t);
}

void warp_collective(const char* name, combine_fn fn, unsigned mask, const slot& mine) {
  warp_collective_at(name, fn, mask, mine, __builtin_return_address(0));
}

unsigned active_mask() {
  emulator& e = S();
  const fiber_thread& t = current("__activemask()");
  return e.warp_exist[t.info.warp] & ~e.warp_exited[t.info.warp];
}

void yield() {
  fiber_thread& t = current("__nanosleep()");
  suspend(t, false);  // stays ready: resumed in the next round
}

void shfl(int mode, unsigned mask, const void* in, void* out, unsigned size, int arg, int width) {
  const slot s{in, out, nullptr, arg, (static_cast<long long>(size) << 8) | (static_cast<unsigned>(width) & 0xff)};
  warp_collective_at(shfl_names[mode & 3], shfl_fns[mode & 3], mask, s, __builtin_return_address(0));
}

unsigned vote(int op, unsigned mask, int pred) {
  unsigned out = 0;
  const slot s{nullptr, &out, nullptr, pred != 0, op};
  warp_collective_at(vote_names[op], &vote_combine, mask, s, __builtin_return_address(0));
  return out;
}

unsigned reduce32(int op, unsigned mask, unsigned value) {
  unsigned out = 0;
  const slot s{nullptr, &out, nullptr, value, op};
  warp_collective_at(reduce_names[op & 7], &reduce_combine, mask, s, __builtin_return_address(0));
  return out;
}

unsigned match(int op, unsigned mask, const void* value, unsigned size, int* pred) {
  unsigned out = 0;
  const slot s{value, &out, pred, 0, (static_cast<long long>(size) << 8) | (op & 1)};
  warp_collective_at(op ? "__match_all_sync()" : "__match_any_sync()", &match_combine, mask, s,
                     __builtin_return_address(0));
  return out;
}

}  // namespace detail
}  // namespace simt

bool simt::set_schedule(const char* spec) {
  configure();
  std::lock_guard<std::mutex> lock(S().launch_mutex);
  const policy p = S().sched;
  const unsigned long long seed = S().seed;
  if (parse_schedule(spec)) return true;
  S().sched = p, S().seed = seed;
  return false;
}

unsigned char simt::poison() {
  configure();
  return S().poison;
}

const char* simt::schedule() {
  configure();
  static thread_local std::string spec;
  const emulator& e = S();
  spec = e.sched == policy::forward ? "forward" : e.sched == policy::reverse ? "reverse" : "random:" + std::to_string(e.seed);
  return spec.c_str();
}

long long clock64() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
unsigned long long __globaltimer() { return static_cast<unsigned long long>(clock64()); }

// ---------------------------------------------------------------------------------------------------
// The runtime API.
struct CUstream_st {
  unsigned flags;
  int priority;
};
struct CUevent_st {
  unsigned flags;
  bool recorded;
  std::chrono::steady_clock::time_point t;
};
struct CUmemPoolHandle_st {
  bool is_default;
  unsigned long long release_threshold, used, used_high, reserved_high;
  int reuse[3];
};

namespace {

constexpr std::size_t k_total_mem = std::size_t(80) << 30;
constexpr int k_smem_default = 48 * 1024;
constexpr int k_smem_optin = 232448;  // 227 KiB
constexpr int k_smem_per_sm = 233472;  // 228 KiB

struct alloc_info {
  std::size_t size;
  CUmemPoolHandle_st* pool;
};
struct func_attr {
  int max_dynamic_smem = k_smem_default;
  int carveout = -1;
};

struct runtime {
  std::mutex m;
  std::unordered_map<const void*, alloc_info> device;
  std::unordered_map<const void*, std::size_t> host;
  std::unordered_set<const CUstream_st*> streams;
  std::unordered_set<const CUevent_st*> events;
  std::unordered_set<const CUmemPoolHandle_st*> pools;
  CUmemPoolHandle_st default_pool{true, 0, 0, 0, 0, {1, 1, 1}};
  CUmemPoolHandle_st* current_pool = &default_pool;
  std::unordered_map<const void*, func_attr> funcs;
  std::size_t device_bytes = 0;
};
runtime& R() {
  static runtime* r = new runtime;
  return *r;
}

thread_local cudaError_t tl_last_error = cudaSuccess;

cudaError_t fail(cudaError_t e) {
  if (e != cudaSuccess) tl_last_error = e;
  return e;
}

bool stream_ok(cudaStream_t s) {
  if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) return true;
  runtime& r = R();
  std::lock_guard<std::mutex> lock(r.m);
  return r.streams.count(s) != 0;
}

cudaError_t device_alloc(void** ptr, std::size_t size, CUmemPoolHandle_st* pool) {
  if (!ptr) return fail(cudaErrorInvalidValue);
  *ptr = nullptr;
  if (size == 0) return cudaSuccess;
  runtime& r = R();
  std::lock_guard<std::mutex> lock(r.m);
  if (size > k_total_mem - r.device_bytes) return fail(cudaErrorMemoryAllocation);
  configure();
  void* p = nullptr;
  // Exactly `size` bytes (not rounded up): AddressSanitizer then sees an overrun of the allocation.
  if (posix_memalign(&p, 256, size) != 0 || !p) return fail(cudaErrorMemoryAllocation);
  std::memset(p, S().poison, size);  // device memory starts undefined: reads of unwritten memory show up
  r.device.emplace(p, alloc_info{size, pool});
  r.device_bytes += size;
  if (pool) {
    pool->used += size;
    pool->used_high = std::max(pool->used_high, pool->used);
    pool->reserved_high = std::max(pool->reserved_high, pool->used);
  }
  *ptr = p;
  return cudaSuccess;
}

cudaError_t device_free(void* p) {
  if (!p) return cudaSuccess;
  runtime& r = R();
  std::lock_guard<std::mutex> lock(r.m);
  auto it = r.device.find(p);
  if (it == r.device.end()) return fail(cudaErrorInvalidValue);
  std::memset(p, S().poison, it->second.size);  // a use after free reads poison (without ASan)
  r.device_bytes -= it->second.size;
  if (it->second.pool) it->second.pool->used -= it->second.size;
  r.device.erase(it);
  std::free(p);
  return cudaSuccess;
}

int max_dynamic_smem(const void* func) {
  runtime& r = R();
  std::lock_guard<std::mutex> lock(r.m);
  auto it = r.funcs.find(func);
  return it == r.funcs.end() ? k_smem_default : it->second.max_dynamic_smem;
}

}  // namespace

namespace simt {
namespace detail {

cudaError_t launch(const void* func, const char* signature, invoke_fn invoke, dim3 grid, dim3 block, void** args,
                   std::size_t smem, cudaStream_t stream) {
  if (!func || !invoke) return fail(cudaErrorInvalidDeviceFunction);
  if (!stream_ok(stream)) return fail(cudaErrorInvalidResourceHandle);
  const unsigned long long nt = static_cast<unsigned long long>(block.x) * block.y * block.z;
  if (block.x == 0 || block.y == 0 || block.z == 0 || block.x > 1024 || block.y > 1024 || block.z > 64 || nt > 1024)
    return fail(cudaErrorInvalidConfiguration);
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535)
    return fail(cudaErrorInvalidConfiguration);
  if (smem > static_cast<std::size_t>(max_dynamic_smem(func))) return fail(cudaErrorInvalidValue);
  if (tl_in_kernel) fatal("a kernel launched another kernel (dynamic parallelism is not emulated)");

  emulator& e = S();
  std::lock_guard<std::mutex> lock(e.launch_mutex);
  configure();
#if !SIMT_ASAN
  install_segv_handler();
#endif
  e.func = func;
  e.signature = signature;
  e.invoke = invoke;
  e.args = args;
  e.n = static_cast<unsigned>(nt);
  e.nwarps = (e.n + 31) / 32;
  if (e.th.size() < e.n) {
    e.th.resize(e.n);
    e.slots.resize(e.n);
  }
  e.warp_wait.assign(e.nwarps, 0u);
  e.warp_exited.assign(e.nwarps, 0u);
  e.warp_exist.assign(e.nwarps, 0u);
  e.order.resize(e.n);
  for (unsigned i = 0; i < e.n; ++i) {
    fiber_thread& t = e.th[i];
    t.info.idx = uint3{i % block.x, (i / block.x) % block.y, i / (block.x * block.y)};
    t.info.linear = i;
    t.info.lane = i % 32;
    t.info.warp = i / 32;
    t.stack_lo = stack_for(i);
    t.stack_size = e.stack_bytes;
    e.warp_exist[i / 32] |= 1u << (i % 32);
    e.order[i] = e.sched == policy::reverse ? e.n - 1 - i : i;
  }
  void* mem = nullptr;
  if (smem && (posix_memalign(&mem, 16, smem) != 0 || !mem)) return fail(cudaErrorMemoryAllocation);
  g_block.dim = block;
  g_block.grid = grid;
  g_block.smem = static_cast<unsigned char*>(mem);
  g_block.smem_bytes = smem;
  g_block.threads = e.n;

  tl_in_kernel = true;
  const unsigned long long gx = grid.x, gy = grid.y, total = gx * gy * grid.z;
  auto coord = [&](unsigned long long k) {
    return uint3{static_cast<unsigned>(k % gx), static_cast<unsigned>((k / gx) % gy), static_cast<unsigned>(k / (gx * gy))};
  };
  if (e.sched == policy::random && total <= (1ull << 22)) {  // block order shuffled as well
    std::vector<unsigned> perm(static_cast<std::size_t>(total));
    for (unsigned k = 0; k < perm.size(); ++k) perm[k] = k;
    for (std::size_t i = perm.size(); i > 1; --i) std::swap(perm[i - 1], perm[e.rng() % i]);
    for (unsigned k : perm) run_block(coord(k));
  } else if (e.sched == policy::reverse) {
    for (unsigned long long k = total; k-- > 0;) run_block(coord(k));
  } else {
    for (unsigned long long k = 0; k < total; ++k) run_block(coord(k));
  }
  tl_in_kernel = false;
  std::free(mem);
  g_block.smem = nullptr;
  g_block.smem_bytes = 0;
  e.func = nullptr;
  return cudaSuccess;
}

int occupancy(const void* func, int block_size, std::size_t smem) {
  if (block_size <= 0 || block_size > 1024) return 0;
  if (smem > static_cast<std::size_t>(max_dynamic_smem(func))) return 0;
  const int warps = (block_size + 31) / 32;
  int blocks = std::min(32, 64 / warps);
  if (smem) blocks = std::min<int>(blocks, static_cast<int>(k_smem_per_sm / (smem + 1024)));
  return blocks;
}

}  // namespace detail
}  // namespace simt

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
#define SIMT_CASE(x) \
  case x: return #x;
    SIMT_CASE(cudaSuccess)
    SIMT_CASE(cudaErrorInvalidValue)
    SIMT_CASE(cudaErrorMemoryAllocation)
    SIMT_CASE(cudaErrorInitializationError)
    SIMT_CASE(cudaErrorInvalidConfiguration)
    SIMT_CASE(cudaErrorInvalidPitchValue)
    SIMT_CASE(cudaErrorInvalidSymbol)
    SIMT_CASE(cudaErrorInvalidDevicePointer)
    SIMT_CASE(cudaErrorInvalidMemcpyDirection)
    SIMT_CASE(cudaErrorInvalidDeviceFunction)
    SIMT_CASE(cudaErrorNoDevice)
    SIMT_CASE(cudaErrorInvalidDevice)
    SIMT_CASE(cudaErrorInvalidResourceHandle)
    SIMT_CASE(cudaErrorNotReady)
    SIMT_CASE(cudaErrorIllegalAddress)
    SIMT_CASE(cudaErrorLaunchOutOfResources)
    SIMT_CASE(cudaErrorMisalignedAddress)
    SIMT_CASE(cudaErrorLaunchFailure)
    SIMT_CASE(cudaErrorNotPermitted)
    SIMT_CASE(cudaErrorNotSupported)
    SIMT_CASE(cudaErrorUnknown)
#undef SIMT_CASE
  }
  return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidPitchValue: return "invalid pitch argument";
    case cudaErrorInvalidSymbol: return "invalid device symbol";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorInvalidDeviceFunction: return "invalid device function";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    case cudaErrorMisalignedAddress: return "misaligned address";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorNotPermitted: return "operation not permitted";
    case cudaErrorNotSupported: return "operation not supported";
    case cudaErrorUnknown: return "unknown error";
  }
  return "unrecognized error code";
}

cudaError_t cudaGetLastError() {
  const cudaError_t e = tl_last_error;
  tl_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return tl_last_error; }

cudaError_t cudaGetDeviceCount(int* count) {
  if (!count) return fail(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
  if (!device) return fail(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice); }
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
cudaError_t cudaDeviceReset() { return cudaSuccess; }
cudaError_t cudaDriverGetVersion(int* v) {
  if (!v) return fail(cudaErrorInvalidValue);
  *v = 12080;
  return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* v) { return cudaDriverGetVersion(v); }

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (!value) return fail(cudaErrorInvalidValue);
  if (device != 0) return fail(cudaErrorInvalidDevice);
  int v;
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: v = 1024; break;
    case cudaDevAttrMaxBlockDimX: v = 1024; break;
    case cudaDevAttrMaxBlockDimY: v = 1024; break;
    case cudaDevAttrMaxBlockDimZ: v = 64; break;
    case cudaDevAttrMaxGridDimX: v = 2147483647; break;
    case cudaDevAttrMaxGridDimY: v = 65535; break;
    case cudaDevAttrMaxGridDimZ: v = 65535; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: v = k_smem_default; break;
    case cudaDevAttrTotalConstantMemory: v = 65536; break;
    case cudaDevAttrWarpSize: v = 32; break;
    case cudaDevAttrMaxPitch: v = 2147483647; break;
    case cudaDevAttrMaxRegistersPerBlock: v = 65536; break;
    case cudaDevAttrClockRate: v = 1980000; break;
    case cudaDevAttrTextureAlignment: v = 512; break;
    case cudaDevAttrGpuOverlap: v = 1; break;
    case cudaDevAttrMultiProcessorCount: v = 132; break;
    case cudaDevAttrKernelExecTimeout: v = 0; break;
    case cudaDevAttrIntegrated: v = 0; break;
    case cudaDevAttrCanMapHostMemory: v = 1; break;
    case cudaDevAttrComputeMode: v = 0; break;
    case cudaDevAttrConcurrentKernels: v = 1; break;
    case cudaDevAttrEccEnabled: v = 1; break;
    case cudaDevAttrPciBusId: v = 0; break;
    case cudaDevAttrMemoryClockRate: v = 2619000; break;
    case cudaDevAttrGlobalMemoryBusWidth: v = 5120; break;
    case cudaDevAttrL2CacheSize: v = 50 * 1024 * 1024; break;
    case cudaDevAttrMaxThreadsPerMultiProcessor: v = 2048; break;
    case cudaDevAttrAsyncEngineCount: v = 3; break;
    case cudaDevAttrUnifiedAddressing: v = 1; break;
    case cudaDevAttrComputeCapabilityMajor: v = 9; break;
    case cudaDevAttrComputeCapabilityMinor: v = 0; break;
    case cudaDevAttrStreamPrioritiesSupported: v = 1; break;
    case cudaDevAttrMaxSharedMemoryPerMultiprocessor: v = k_smem_per_sm; break;
    case cudaDevAttrMaxRegistersPerMultiprocessor: v = 65536; break;
    case cudaDevAttrManagedMemory: v = 1; break;
    case cudaDevAttrCooperativeLaunch: v = 1; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: v = k_smem_optin; break;
    case cudaDevAttrMaxBlocksPerMultiprocessor: v = 32; break;
    case cudaDevAttrMaxPersistingL2CacheSize: v = 32 * 1024 * 1024; break;
    case cudaDevAttrMemoryPoolsSupported: v = 1; break;
    default: return fail(cudaErrorInvalidValue);
  }
  *value = v;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
  if (!p) return fail(cudaErrorInvalidValue);
  if (device != 0) return fail(cudaErrorInvalidDevice);
  std::memset(p, 0, sizeof *p);
  std::snprintf(p->name, sizeof p->name, "SIMT emulator (H100-like)");
  auto attr = [](cudaDeviceAttr a) {
    int v = 0;
    cudaDeviceGetAttribute(&v, a, 0);
    return v;
  };
  p->totalGlobalMem = k_total_mem;
  p->sharedMemPerBlock = static_cast<std::size_t>(k_smem_default);
  p->regsPerBlock = 65536;
  p->warpSize = 32;
  p->memPitch = 2147483647;
  p->maxThreadsPerBlock = 1024;
  p->maxThreadsDim[0] = 1024, p->maxThreadsDim[1] = 1024, p->maxThreadsDim[2] = 64;
  p->maxGridSize[0] = 2147483647, p->maxGridSize[1] = 65535, p->maxGridSize[2] = 65535;
  p->clockRate = attr(cudaDevAttrClockRate);
  p->totalConstMem = 65536;
  p->major = 9;
  p->minor = 0;
  p->textureAlignment = 512;
  p->deviceOverlap = 1;
  p->multiProcessorCount = 132;
  p->canMapHostMemory = 1;
  p->concurrentKernels = 1;
  p->ECCEnabled = 1;
  p->asyncEngineCount = 3;
  p->unifiedAddressing = 1;
  p->memoryClockRate = attr(cudaDevAttrMemoryClockRate);
  p->memoryBusWidth = 5120;
  p->l2CacheSize = 50 * 1024 * 1024;
  p->persistingL2CacheMaxSize = 32 * 1024 * 1024;
  p->maxThreadsPerMultiProcessor = 2048;
  p->streamPrioritiesSupported = 1;
  p->sharedMemPerMultiprocessor = static_cast<std::size_t>(k_smem_per_sm);
  p->regsPerMultiprocessor = 65536;
  p->managedMemory = 1;
  p->cooperativeLaunch = 1;
  p->sharedMemPerBlockOptin = static_cast<std::size_t>(k_smem_optin);
  p->maxBlocksPerMultiProcessor = 32;
  p->reservedSharedMemPerBlock = 1024;
  p->memoryPoolsSupported = 1;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** ptr, std::size_t size) { return device_alloc(ptr, size, nullptr); }
cudaError_t cudaMallocManaged(void** ptr, std::size_t size, unsigned) { return device_alloc(ptr, size, nullptr); }
cudaError_t cudaMallocPitch(void** ptr, std::size_t* pitch, std::size_t width, std::size_t height) {
  if (!pitch) return fail(cudaErrorInvalidValue);
  *pitch = (width + 511) / 512 * 512;
  return device_alloc(ptr, *pitch * height, nullptr);
}
cudaError_t cudaFree(void* ptr) { return device_free(ptr); }

cudaError_t cudaMallocHost(void** ptr, std::size_t size) {
  if (!ptr) return fail(cudaErrorInvalidValue);
  *ptr = nullptr;
  if (size == 0) return cudaSuccess;
  void* p = nullptr;
  if (posix_memalign(&p, 256, size) != 0 || !p) return fail(cudaErrorMemoryAllocation);
  runtime& r = R();
  std::lock_guard<std::mutex> lock(r.m);
  r.host.emplace(p, size);
  *ptr = p;
  return cudaSuccess;
}
cudaError_t cudaHostAlloc(void** ptr, std::size_t size, unsigned) { return cudaMallocHost(ptr, size); }
cudaError_t cudaFreeHost(void* ptr) {
  if (!ptr) return cudaSuccess;
  runtime& r = R();
  std::lock_guard<std::mutex> lock(r.m);
  if (!r.host.erase(ptr)) return fail(cudaErrorInvalidValue);
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaMallocAsync(void** ptr, std::size_t size, cudaStream_t stream) {
  if (!stream_ok(stream)) return fail(cudaErrorInvalidResourceHandle);
  return device_alloc(ptr, size, R().current_pool);
}
cudaError_t cudaFreeAsync(void* ptr, cudaStream_t stream) {
  if (!stream_ok(stream)) return fail(cudaErrorInvalidResourceHandle);
  return device_free(ptr);
}
cudaError_t cudaMemGetInfo(std::size_t* free, std::size_t* total) {
  if (!free || !total) return fail(cudaErrorInvalidValue);
  runtime& r = R();
  std::lock_guard<std::mutex> lock(r.m);
  *total = k_total_mem;
  *free = k_total_mem - r.device_bytes;
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t count, cudaMemcpyKind kind) {
  if (static_cast<unsigned>(kind) > 4u) return fail(cudaErrorInvalidMemcpyDirection);
  if (count == 0) return cudaSuccess;
  if (!dst || !src) return fail(cudaErrorInvalidValue);
  if (dst != src) std::memcpy(dst, src, count);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t count, cudaMemcpyKind kind, cudaStream_t s) {
  if (!stream_ok(s)) return fail(cudaErrorInvalidResourceHandle);
  return cudaMemcpy(dst, src, count, kind);
}
cudaError_t cudaMemcpy2D(void* dst, std::size_t dpitch, const void* src, std::size_t spitch, std::size_t width,
                         std::size_t height, cudaMemcpyKind kind) {
  if (static_cast<unsigned>(kind) > 4u) return fail(cudaErrorInvalidMemcpyDirection);
  if (width > dpitch || width > spitch) return fail(cudaErrorInvalidPitchValue);
  if (width == 0 || height == 0) return cudaSuccess;
  if (!dst || !src) return fail(cudaErrorInvalidValue);
  for (std::size_t r = 0; r < height; ++r)
    std::memcpy(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch, width);
  return cudaSuccess;
}
cudaError_t cudaMemcpy2DAsync(void* dst, std::size_t dpitch, const void* src, std::size_t spitch, std::size_t width,
                              std::size_t height, cudaMemcpyKind kind, cudaStream_t s) {
  if (!stream_ok(s)) return fail(cudaErrorInvalidResourceHandle);
  return cudaMemcpy2D(dst, dpitch, src, spitch, width, height, kind);
}
cudaError_t cudaMemset(void* ptr, int value, std::size_t count) {
  if (count == 0) return cudaSuccess;
  if (!ptr) return fail(cudaErrorInvalidValue);
  std::memset(ptr, value, count);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* ptr, int value, std::size_t count, cudaStream_t s) {
  if (!stream_ok(s)) return fail(cudaErrorInvalidResourceHandle);
  return cudaMemset(ptr, value, count);
}
cudaError_t cudaMemset2D(void* ptr, std::size_t pitch, int value, std::size_t width, std::size_t height) {
  if (width > pitch && height > 1) return fail(cudaErrorInvalidValue);
  if (width == 0 || height == 0) return cudaSuccess;
  if (!ptr) return fail(cudaErrorInvalidValue);
  for (std::size_t r = 0; r < height; ++r) std::memset(static_cast<char*>(ptr) + r * pitch, value, width);
  return cudaSuccess;
}
cudaError_t cudaMemset2DAsync(void* ptr, std::size_t pitch, int value, std::size_t width, std::size_t height,
                              cudaStream_t s) {
  if (!stream_ok(s)) return fail(cudaErrorInvalidResourceHandle);
  return cudaMemset2D(ptr, pitch, value, width, height);
}

cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int device) {
  if (!pool) return fail(cudaErrorInvalidValue);
  if (device != 0) return fail(cudaErrorInvalidDevice);
  *pool = &R().default_pool;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetMemPool(cudaMemPool_t* pool, int device) {
  if (!pool) return fail(cudaErrorInvalidValue);
  if (device != 0) return fail(cudaErrorInvalidDevice);
  *pool = R().current_pool;
  return cudaSuccess;
}
cudaError_t cudaDeviceSetMemPool(int device, cudaMemPool_t pool) {
  if (device != 0) return fail(cudaErrorInvalidDevice);
  runtime& r = R();
  std::lock_guard<std::mutex> lock(r.m);
  if (pool != &r.default_pool && !r.pools.count(pool)) return fail(cudaErrorInvalidValue);
  r.current_pool = pool;
  return cudaSuccess;
}
cudaError_t cudaMemPoolCreate(cudaMemPool_t* pool, const cudaMemPoolProps* props) {
  if (!pool || !props) return fail(cudaErrorInvalidValue);
  if (props->allocType != cudaMemAllocationTypePinned || props->location.type != cudaMemLocationTypeDevice ||
      props->location.id != 0)
    return fail(cudaErrorInvalidValue);
  auto* p = new CUmemPoolHandle_st{false, 0, 0, 0, 0, {1, 1, 1}};
  runtime& r = R();
  std::lock_guard<std::mutex> lock(r.m);
  r.pools.insert(p);
  *pool = p;
  return cudaSuccess;
}
cudaError_t cudaMemPoolDestroy(cudaMemPool_t pool) {
  runtime& r = R();
  std::lock_guard<std::mutex> lock(r.m);
  if (!r.pools.erase(pool)) return fail(cudaErrorInvalidValue);  // includes the default pool
  if (r.current_pool == pool) r.current_pool = &r.default_pool;
  for (auto& a : r.device)  // memory still allocated from it stays valid (as CUDA), untracked
    if (a.second.pool == pool) a.second.pool = nullptr;
  delete pool;
  return cudaSuccess;
}
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void* value) {
  runtime& r = R();
  std::lock_guard<std::mutex> lock(r.m);
  if (!value || (pool != &r.default_pool && !r.pools.count(pool))) return fail(cudaErrorInvalidValue);
  switch (attr) {
    case cudaMemPoolReuseFollowEventDependencies:
    case cudaMemPoolReuseAllowOpportunistic:
    case cudaMemPoolReuseAllowInternalDependencies:
      pool->reuse[attr - 1] = *static_cast<int*>(value);
      return cudaSuccess;
    case cudaMemPoolAttrReleaseThreshold:
      pool->release_threshold = *static_cast<unsigned long long*>(value);
      return cudaSuccess;
    case cudaMemPoolAttrReservedMemHigh:
    case cudaMemPoolAttrUsedMemHigh:  // may only be reset to 0
      if (*static_cast<unsigned long long*>(value) != 0) return fail(cudaErrorInvalidValue);
      (attr == cudaMemPoolAttrUsedMemHigh ? pool->used_high : pool->reserved_high) = pool->used;
      return cudaSuccess;
    default:
      return fail(cudaErrorInvalidValue);
  }
}
cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void* value) {
  runtime& r = R();
  std::lock_guard<std::mutex> lock(r.m);
  if (!value || (pool != &r.default_pool && !r.pools.count(pool))) return fail(cudaErrorInvalidValue);
  auto u64 = [&](unsigned long long v) { *static_cast<unsigned long long*>(value) = v; };
  switch (attr) {
    case cudaMemPoolReuseFollowEventDependencies:
    case cudaMemPoolReuseAllowOpportunistic:
    case cudaMemPoolReuseAllowInternalDependencies: *static_cast<int*>(value) = pool->reuse[attr - 1]; break;
    case cudaMemPoolAttrReleaseThreshold: u64(pool->release_threshold); break;
    case cudaMemPoolAttrReservedMemCurrent: u64(pool->used); break;
    case cudaMemPoolAttrReservedMemHigh: u64(pool->reserved_high); break;
    case cudaMemPoolAttrUsedMemCurrent: u64(pool->used); break;
    case cudaMemPoolAttrUsedMemHigh: u64(pool->used_high); break;
    default: return fail(cudaErrorInvalidValue);
  }
  return cudaSuccess;
}
cudaError_t cudaMemPoolTrimTo(cudaMemPool_t pool, std::size_t) {
  runtime& r = R();
  std::lock_guard<std::mutex> lock(r.m);
  if (pool != &r.default_pool && !r.pools.count(pool)) return fail(cudaErrorInvalidValue);
  return cudaSuccess;
}
cudaError_t cudaMallocFromPoolAsync(void** ptr, std::size_t size, cudaMemPool_t pool, cudaStream_t stream) {
  if (!stream_ok(stream)) return fail(cudaErrorInvalidResourceHandle);
  {
    runtime& r = R();
    std::lock_guard<std::mutex> lock(r.m);
    if (pool != &r.default_pool && !r.pools.count(pool)) return fail(cudaErrorInvalidValue);
  }
  return device_alloc(ptr, size, pool);
}

cudaError_t cudaStreamCreateWithPriority(cudaStream_t* stream, unsigned flags, int priority) {
  if (!stream || flags > 1u) return fail(cudaErrorInvalidValue);
  auto* s = new CUstream_st{flags, priority};
  runtime& r = R();
  std::lock_guard<std::mutex> lock(r.m);
  r.streams.insert(s);
  *stream = s;
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags) {
  return cudaStreamCreateWithPriority(stream, flags, 0);
}
cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithPriority(stream, 0, 0); }
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  runtime& r = R();
  std::lock_guard<std::mutex> lock(r.m);
  if (!r.streams.erase(stream)) return fail(cudaErrorInvalidResourceHandle);
  delete stream;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  return stream_ok(s) ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}
cudaError_t cudaStreamQuery(cudaStream_t s) { return cudaStreamSynchronize(s); }
cudaError_t cudaLaunchHostFunc(cudaStream_t s, cudaHostFn_t fn, void* user_data) {
  if (!stream_ok(s)) return fail(cudaErrorInvalidResourceHandle);
  if (!fn) return fail(cudaErrorInvalidValue);
  fn(user_data);
  return cudaSuccess;
}

namespace {
bool event_ok(cudaEvent_t e) {
  runtime& r = R();
  std::lock_guard<std::mutex> lock(r.m);
  return e && r.events.count(e) != 0;
}
}  // namespace

cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t event, unsigned) {
  if (!stream_ok(s) || !event_ok(event)) return fail(cudaErrorInvalidResourceHandle);
  return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags) {
  if (!event || flags > 7u) return fail(cudaErrorInvalidValue);
  auto* e = new CUevent_st{flags, false, {}};
  runtime& r = R();
  std::lock_guard<std::mutex> lock(r.m);
  r.events.insert(e);
  *event = e;
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, 0); }
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t s) {
  if (!stream_ok(s) || !event_ok(event)) return fail(cudaErrorInvalidResourceHandle);
  event->recorded = true;
  event->t = std::chrono::steady_clock::now();
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  return event_ok(event) ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}
cudaError_t cudaEventQuery(cudaEvent_t event) { return cudaEventSynchronize(event); }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!ms) return fail(cudaErrorInvalidValue);
  if (!event_ok(start) || !event_ok(end)) return fail(cudaErrorInvalidResourceHandle);
  if ((start->flags | end->flags) & cudaEventDisableTiming) return fail(cudaErrorInvalidResourceHandle);
  if (!start->recorded || !end->recorded) return fail(cudaErrorInvalidResourceHandle);
  *ms = std::chrono::duration<float, std::milli>(end->t - start->t).count();
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  runtime& r = R();
  std::lock_guard<std::mutex> lock(r.m);
  if (!event || !r.events.erase(event)) return fail(cudaErrorInvalidResourceHandle);
  delete event;
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  if (!func) return fail(cudaErrorInvalidDeviceFunction);
  runtime& r = R();
  std::lock_guard<std::mutex> lock(r.m);
  switch (attr) {
    case cudaFuncAttributeMaxDynamicSharedMemorySize:
      // CUDA refuses more than the opt-in maximum minus the kernel's static shared memory; the static
      // size is unknown here, so only the opt-in maximum is enforced.
      if (value < 0 || value > k_smem_optin) return fail(cudaErrorInvalidValue);
      r.funcs[func].max_dynamic_smem = value;
      return cudaSuccess;
    case cudaFuncAttributePreferredSharedMemoryCarveout:
      if (value < -1 || value > 100) return fail(cudaErrorInvalidValue);
      r.funcs[func].carveout = value;
      return cudaSuccess;
  }
  return fail(cudaErrorInvalidValue);
}
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* a, const void* func) {
  if (!a) return fail(cudaErrorInvalidValue);
  if (!func) return fail(cudaErrorInvalidDeviceFunction);
  runtime& r = R();
  std::lock_guard<std::mutex> lock(r.m);
  const auto it = r.funcs.find(func);
  const func_attr f = it == r.funcs.end() ? func_attr{} : it->second;
  std::memset(a, 0, sizeof *a);
  a->sharedSizeBytes = 0;  // unknown: see cuda_runtime.h
  a->maxThreadsPerBlock = 1024;
  a->ptxVersion = 90;
  a->binaryVersion = 90;
  a->maxDynamicSharedSizeBytes = f.max_dynamic_smem;
  a->preferredShmemCarveout = f.carveout;
  return cudaSuccess;
}
cudaError_t cudaFuncSetCacheConfig(const void* func, cudaFuncCache) {
  return func ? cudaSuccess : fail(cudaErrorInvalidDeviceFunction);
}
