// examples/train/checkpoint.hpp — checks on a checkpoint before LibTorch reads it (no LibTorch needed here).
//
// * verify_zip(path): a LibTorch checkpoint is a zip archive (PyTorchStreamWriter) whose members are stored
//   uncompressed (tensors) or deflated (code, pickles) with their CRC-32 in the central directory, but
//   LibTorch's reader never checks the stored ones: a checkpoint with flipped bytes inside a tensor resumed
//   silently. verify_zip walks the central directory (zip64 included), recomputes every member's CRC-32
//   (zlib's crc32 and inflate) and throws a one-line std::runtime_error naming the file and the member on
//   any mismatch, truncation or structural damage.
// * flag signatures: the flags a checkpoint must agree on, stored as "name=value" lines, so that a mismatch
//   can be reported flag by flag (old vs new) instead of as two opaque strings.
#pragma once

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <zlib.h>  // a dependency of LibTorch itself: CRC-32 and inflate

namespace topofr::train {

namespace detail_ckpt {

inline std::uint64_t le(const unsigned char* p, int bytes) {
  std::uint64_t v = 0;
  for (int k = bytes - 1; k >= 0; --k) v = v << 8 | p[k];
  return v;
}

/// CRC-32 (zip/zlib/PNG) of n bytes continuing from crc (0 to start), by zlib in chunks that fit its uInt.
inline std::uint32_t crc32_update(std::uint32_t crc, const unsigned char* p, std::size_t n) {
  for (std::size_t done = 0; done < n;) {
    const uInt k = static_cast<uInt>(std::min<std::size_t>(n - done, 1u << 30));
    crc = static_cast<std::uint32_t>(::crc32(crc, p + done, k));
    done += k;
  }
  return crc;
}

}  // namespace detail_ckpt

/// Checks every member of the zip archive `path` against the CRC-32 and size of its central-directory
/// entry (stored members directly, deflated ones after inflating). Returns the number of members. Throws
/// std::runtime_error("<path>: [member '<name>': ]<what>").
inline std::size_t verify_zip(const std::string& path) {
  using detail_ckpt::le;
  auto bad = [&](const std::string& what) -> std::runtime_error { return std::runtime_error(path + ": " + what); };
  std::ifstream in(path, std::ios::binary);
  if (!in) throw bad("cannot open the file");
  in.seekg(0, std::ios::end);
  const std::uint64_t size = static_cast<std::uint64_t>(in.tellg());
  auto read_at = [&](std::uint64_t off, std::size_t n, const char* what) {
    std::vector<unsigned char> b(n);
    if (off > size || n > size - off) throw bad(std::string("truncated (") + what + " past the end of the file)");
    in.clear();
    in.seekg(static_cast<std::streamoff>(off));
    in.read(reinterpret_cast<char*>(b.data()), static_cast<std::streamsize>(n));
    if (!in) throw bad(std::string("read error (") + what + ")");
    return b;
  };

  // End of central directory: the last "PK\5\6" within the final 22 + 65535 bytes.
  if (size < 22) throw bad("truncated (too short for a zip archive)");
  const std::uint64_t tail_len = std::min<std::uint64_t>(size, 22 + 65535);
  const std::vector<unsigned char> tail = read_at(size - tail_len, static_cast<std::size_t>(tail_len), "end record");
  std::int64_t eocd = -1;
  for (std::int64_t i = static_cast<std::int64_t>(tail_len) - 22; i >= 0; --i)
    if (le(&tail[static_cast<std::size_t>(i)], 4) == 0x06054b50u) {
      eocd = i;
      break;
    }
  if (eocd < 0) throw bad("truncated or not a zip archive (no end-of-central-directory record)");
  const unsigned char* e = &tail[static_cast<std::size_t>(eocd)];
  std::uint64_t entries = le(e + 10, 2), cd_size = le(e + 12, 4), cd_off = le(e + 16, 4);
  const std::uint64_t eocd_abs = size - tail_len + static_cast<std::uint64_t>(eocd);
  if (entries == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu) {  // zip64
    if (eocd_abs < 20) throw bad("corrupt zip64 archive (no zip64 locator)");
    const auto loc = read_at(eocd_abs - 20, 20, "zip64 locator");
    if (le(loc.data(), 4) != 0x07064b50u) throw bad("corrupt zip64 archive (no zip64 locator)");
    const auto rec = read_at(le(loc.data() + 8, 8), 56, "zip64 end record");
    if (le(rec.data(), 4) != 0x06064b50u) throw bad("corrupt zip64 archive (bad zip64 end record)");
    entries = le(rec.data() + 32, 8);
    cd_size = le(rec.data() + 40, 8);
    cd_off = le(rec.data() + 48, 8);
  }
  if (entries == 0) throw bad("not a checkpoint (empty zip archive)");
  const std::vector<unsigned char> cd = read_at(cd_off, static_cast<std::size_t>(cd_size), "central directory");

  std::vector<unsigned char> buf(1 << 16);
  std::size_t p = 0, count = 0;
  for (std::uint64_t k = 0; k < entries; ++k) {
    if (p + 46 > cd.size() || le(&cd[p], 4) != 0x02014b50u) throw bad("corrupt zip central directory");
    const unsigned char* h = &cd[p];
    const std::uint64_t method = le(h + 10, 2), crc = le(h + 16, 4);
    std::uint64_t csize = le(h + 20, 4), usize = le(h + 24, 4), off = le(h + 42, 4);
    const std::size_t nlen = le(h + 28, 2), xlen = le(h + 30, 2), clen = le(h + 32, 2);
    if (p + 46 + nlen + xlen + clen > cd.size()) throw bad("corrupt zip central directory");
    const std::string name(reinterpret_cast<const char*>(h + 46), nlen);
    auto member = [&](const std::string& what) { return bad("member '" + name + "': " + what); };
    for (std::size_t x = p + 46 + nlen; x + 4 <= p + 46 + nlen + xlen;) {  // zip64 extended information
      const std::uint64_t id = le(&cd[x], 2), len = le(&cd[x + 2], 2);
      if (x + 4 + len > p + 46 + nlen + xlen) throw member("corrupt extra field");
      if (id == 0x0001) {
        std::size_t q = x + 4;
        auto take = [&](std::uint64_t& v) {
          if (v != 0xFFFFFFFFu) return;
          if (q + 8 > x + 4 + len) throw member("corrupt zip64 extra field");
          v = le(&cd[q], 8);
          q += 8;
        };
        take(usize);
        take(csize);
        take(off);
      }
      x += 4 + static_cast<std::size_t>(len);
    }
    if (method != 0 && method != 8)
      throw member("unsupported compression method " + std::to_string(method));
    if (method == 0 && csize != usize) throw member("stored sizes disagree");
    const auto lh = read_at(off, 30, "local header");
    if (le(lh.data(), 4) != 0x04034b50u) throw member("corrupt local header");
    const std::uint64_t data = off + 30 + le(lh.data() + 26, 2) + le(lh.data() + 28, 2);
    if (data > size || csize > size - data) throw member("truncated");
    std::uint32_t c = 0;
    std::uint64_t produced = 0;
    z_stream zs{};
    if (method == 8 && inflateInit2(&zs, -MAX_WBITS) != Z_OK) throw member("zlib inflateInit2 failed");
    struct end_inflate {
      z_stream* z;
      bool on;
      ~end_inflate() {
        if (on) inflateEnd(z);
      }
    } guard{&zs, method == 8};
    std::vector<unsigned char> outbuf(method == 8 ? buf.size() : 0);
    in.clear();
    in.seekg(static_cast<std::streamoff>(data));
    bool stream_end = method == 0;
    for (std::uint64_t left = csize; left > 0;) {
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left, buf.size()));
      in.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(n));
      if (!in) throw member("read error");
      left -= n;
      if (method == 0) {
        c = detail_ckpt::crc32_update(c, buf.data(), n);
        produced += n;
        continue;
      }
      zs.next_in = buf.data();
      zs.avail_in = static_cast<uInt>(n);
      while (zs.avail_in > 0 && !stream_end) {
        zs.next_out = outbuf.data();
        zs.avail_out = static_cast<uInt>(outbuf.size());
        const int r = inflate(&zs, Z_NO_FLUSH);
        if (r != Z_OK && r != Z_STREAM_END) throw member("corrupt compressed data");
        const std::size_t got = outbuf.size() - zs.avail_out;
        c = detail_ckpt::crc32_update(c, outbuf.data(), got);
        produced += got;
        stream_end = r == Z_STREAM_END;
      }
    }
    if (!stream_end || produced != usize) throw member("corrupt (size mismatch)");
    if (c != crc) throw member("CRC-32 mismatch (the data was damaged)");
    p += 46 + nlen + xlen + clen;
    ++count;
  }
  return count;
}

/// The flags a checkpoint must agree on, in order: (name, value).
using flag_list = std::vector<std::pair<std::string, std::string>>;

constexpr const char* kFlagsHeader = "topofr-train flags v2";

/// "topofr-train flags v2\n--name=value\n..." (values must not contain a newline; they are flags' text).
inline std::string flags_signature(const flag_list& flags) {
  std::string s = kFlagsHeader;
  for (const auto& [k, v] : flags) s += "\n" + k + "=" + v;
  return s;
}

/// "" when the stored signature equals this run's; else one line naming the differing flags, stored vs now.
inline std::string flags_difference(const std::string& stored, const flag_list& now) {
  if (stored == flags_signature(now)) return "";
  std::istringstream in(stored);
  std::string line;
  std::getline(in, line);
  if (line != kFlagsHeader) return "it was written by an older topofr-train (flags in another format); start a new --out";
  std::map<std::string, std::string> old;
  while (std::getline(in, line)) {
    const auto eq = line.find('=');
    if (eq != std::string::npos) old[line.substr(0, eq)] = line.substr(eq + 1);
  }
  std::string diff;
  for (const auto& [k, v] : now) {
    const auto it = old.find(k);
    const std::string o = it == old.end() ? "(absent)" : it->second;
    if (o != v) diff += (diff.empty() ? "" : "; ") + k + " " + o + " (checkpoint) vs " + v + " (this run)";
  }
  for (const auto& [k, v] : old) {
    bool known = false;
    for (const auto& kv : now) known = known || kv.first == k;
    if (!known) diff += (diff.empty() ? "" : "; ") + k + " " + v + " (checkpoint) vs (absent) (this run)";
  }
  return diff.empty() ? "its flag signature differs" : diff;
}

}  // namespace topofr::train
