// topofr/core/file.hpp — writing a whole output file without ever destroying what its path named.
//
// Every program in the project writes its outputs through write_file(): .npy results, JSON reports,
// CSV logs, checkpoints. What the path names decides how:
//   * nothing, or a regular file (also through symbolic links): the content is written to a temporary
//     file beside the final target and renamed over it, so a failed or killed write leaves the old file
//     (or none), never half of one. A link stays a link: its target is what gets replaced. An existing
//     file keeps its permission bits.
//   * a character device, FIFO or socket (/dev/null, /dev/stdout, a pipe): written in place, as
//     `cat > path` would. Renaming over it would destroy the device node.
//   * a directory or a dangling symbolic link: an error naming the argument; nothing is touched.
#pragma once

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <utility>

#include <unistd.h>

#include "error.hpp"

namespace topofr {
namespace detail {

/// Writes the file `path` by calling `write_to(p)`, which must create/overwrite the complete file at
/// the path p it is given (p is a temporary beside the target, or the target itself for devices and
/// FIFOs) and throw on failure. `fn`/`arg` name the caller and the argument (a flag) in errors.
template <class WriteTo>
void write_file(const std::string& path, const char* fn, const char* arg, WriteTo&& write_to) {
  namespace fs = std::filesystem;
  require(!path.empty(), fn, arg, "empty output path");
  std::error_code ec;
  const fs::file_status link = fs::symlink_status(path, ec);
  fs::path target = path;
  if (fs::is_symlink(link)) {
    target = fs::canonical(path, ec);
    require(!ec, fn, arg, "'", path, "' is a dangling symbolic link; refusing to replace it");
  }
  const fs::file_status st = fs::status(target, ec);
  const bool exists = fs::exists(st);
  require(!fs::is_directory(st), fn, arg, "'", path, "' is a directory");
  if (exists && !fs::is_regular_file(st)) {  // device, FIFO, socket: write through, never replace
    std::forward<WriteTo>(write_to)(target.string());
    return;
  }
  static std::atomic<unsigned> counter{0};
  const std::string tmp = target.string() + ".tmp-topofr-" + std::to_string(::getpid()) + "-" +
                          std::to_string(counter.fetch_add(1));
  try {
    std::forward<WriteTo>(write_to)(tmp);
    if (exists) fs::permissions(tmp, st.permissions(), fs::perm_options::replace, ec);  // best effort
    fs::rename(tmp, target, ec);
    require(!ec, fn, arg, "cannot rename '", tmp, "' to '", target.string(), "': ", ec.message());
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
}

/// write_file() for content produced on a std::ostream: `fill(os)` writes it; a stream failure is an
/// error naming the path.
template <class Fill>
void write_file_stream(const std::string& path, const char* fn, const char* arg, Fill&& fill) {
  write_file(path, fn, arg, [&](const std::string& p) {
    std::ofstream os(p, std::ios::binary | std::ios::trunc);
    require(static_cast<bool>(os), fn, arg, "cannot open '", p, "' for writing");
    fill(os);
    os.flush();
    require(static_cast<bool>(os), fn, arg, "write to '", p, "' failed");
  });
}

}  // namespace detail
}  // namespace topofr
