// The .npy reader against NumPy's own: hostile and unusual headers are written to files, read by
// topofr::npy::read and by np.load (tests/oracles/npy_oracle.py), and the verdicts (accept with a shape
// and dtype, or refuse) must agree. Where topofr is stricter on purpose, the case says why and the test
// checks that NumPy does accept it (so the list of differences stays true).
#include "support.hpp"

#include <fstream>
#include <sstream>

using namespace topofr;
using topofr::test::scratch;

namespace {

struct hcase {
  std::string header;
  std::uint64_t data_bytes = 160;  // zero bytes after the header (160 = 40 float32)
  int major = 1, minor = 0;
  const char* stricter = nullptr;  // NumPy accepts, topofr refuses: the reason
};

std::string file_bytes(const hcase& c) {
  std::string f = "\x93NUMPY";
  f += static_cast<char>(c.major);
  f += static_cast<char>(c.minor);
  const std::uint32_t n = static_cast<std::uint32_t>(c.header.size());
  f += static_cast<char>(n & 0xff);
  f += static_cast<char>((n >> 8) & 0xff);
  if (c.major != 1) {
    f += static_cast<char>((n >> 16) & 0xff);
    f += static_cast<char>(n >> 24);
  }
  return f + c.header + std::string(c.data_bytes, '\0');
}

const std::string F = "{'descr': '<f4', 'fortran_order': False, 'shape': ";

std::vector<hcase> cases() {
  const std::string nested = std::string(40, '(') + "40," + std::string(40, ')');
  std::string dims32 = "(", dims33 = "(";
  for (int i = 0; i < 32; ++i) dims32 += "1, ";
  dims33 = dims32 + "1, )";
  dims32 += ")";
  return {
      {F + "(5, 8), }"},
      {F + "(5, 8), 'shape': (8, 5), }", 160, 1, 0, "a key given twice (NumPy keeps the last)"},
      {"{'shape': (8, 5), 'descr': '<f4', 'fortran_order': False, 'descr': '<f4'}", 160, 1, 0, "a key given twice"},
      {F + "(40), }"},
      {F + "40, }"},
      {F + "[40], }"},
      {F + "(40,), 'extra': 1}"},
      {F + "(40,), 1: 2}"},
      {"{'descr': '<f4', 'fortran_order': False}"},
      {"{'descr': '<f4', 'shape': (40,)}"},
      {"{'fortran_order': False, 'shape': (40,)}"},
      {"{}", 0},
      {"", 0},
      {"{", 0},
      {"{'descr'", 0},
      {F + "(True, 40)}"},
      {F + "(None,)}"},
      {F + "(4.0,)}"},
      {F + "(1e1,)}"},
      {F + "(40j,)}"},
      {F + "(-1,)}", 160, 1, 0, "a negative dimension (NumPy infers it)"},
      {F + "(-40,)}", 160, 1, 0, "a negative dimension"},
      {F + "(- 40,)}", 160, 1, 0, "a negative dimension"},
      {F + "(-0,)}", 0},
      {F + "(+0,)}", 0},
      {F + "(40, -0x0)}", 0},
      // Sizes: NumPy's limit is itemsize x the product of the non-zero dimensions <= 2^63 - 1.
      {F + "(0, 1099511627776, 1099511627776, 1099511627776)}", 0},
      {F + "(1099511627776, 1099511627776, 1099511627776, 0)}", 0},
      {F + "(3037000500, 3037000500, 0)}", 0},
      {F + "(0, 1073741824, 1073741824)}", 0},
      {F + "(0, 2305843009213693951)}", 0},
      {F + "(0, 2305843009213693952)}", 0},
      {F + "(2305843009213693952, 0)}", 0},
      {F + "(0, 4611686018427387904)}", 0},
      {F + "(0, 9223372036854775807)}", 0},
      {F + "(0, 9223372036854775808)}", 0},
      {F + "(0, 18446744073709551616)}", 0},
      {F + "(0, 1180591620717411303424)}", 0},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (0, 1152921504606846975)}", 0},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (0, 1152921504606846976)}", 0},
      {F + "(2**70,)}", 0},
      {F + dims32 + "}", 4},
      {F + dims33 + "}", 4},
      // Python 2 longs: filtered out by NumPy in format 1.0 and 2.0 only.
      {F + "(5L, 8L), }"},
      {F + "(5L, 8L), }", 160, 2},
      {F + "(5L, 8L), }", 160, 3},
      {F + "(5l, 8), }"},
      {F + "(5Lx, 8), }"},
      {F + "(40 L,), }", 160, 1, 0, "an `L` apart from its number"},
      // Integer spellings.
      {F + "(0x5, 0o10), }"},
      {F + "(0b101, 0X8), }"},
      {F + "(+5, 1_0), }", 200},
      {F + "(0x_a, 4), }"},
      {F + "(0_0, 5), }", 0},
      {F + "(00, 5), }", 0},
      {F + "(05, 8), }"},
      {F + "(1__0, 4), }"},
      {F + "(10_, 4), }"},
      {F + "(0x, 4), }"},
      {F + "(0b12, 4), }"},
      {F + "(+-40,), }"},
      {F + "(-(40),), }", 160, 1, 0, "a negative dimension"},
      // Tuples and parentheses.
      {F + "((40,)), }"},
      {F + "((40),), }"},
      {F + "((5), (8)), }"},
      {F + "((5, 8),), }"},
      {F + "(), }", 4},
      {F + "(1, 2, ), }", 8},
      {F + "(,), }"},
      {F + "(40,,), }"},
      {F + "(40 8), }"},
      {F + nested + "}", 160, 1, 0, "parentheses nested deeper than 32"},
      // fortran_order.
      {"{'descr': '<f4', 'fortran_order': (False), 'shape': (40,)}"},
      {"{'descr': '<f4', 'fortran_order': 0, 'shape': (40,)}"},
      {"{'descr': '<f4', 'fortran_order': None, 'shape': (40,)}"},
      {"{'descr': '<f4', 'fortran_order': 'False', 'shape': (40,)}"},
      {"{'descr': '<f4', 'fortran_order': false, 'shape': (40,)}"},
      {"{'descr': '<f4', 'fortran_order': True, 'shape': (5, 8)}", 160, 1, 0, "Fortran order"},
      // descr.
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (40,)}", 320},
      {"{'descr': '<i4', 'fortran_order': False, 'shape': (40,)}"},
      {"{'descr': '<i8', 'fortran_order': False, 'shape': (40,)}", 320},
      {"{'descr': '>f4', 'fortran_order': False, 'shape': (40,)}", 160, 1, 0, "an unsupported dtype"},
      {"{'descr': '<f2', 'fortran_order': False, 'shape': (40,)}", 80, 1, 0, "an unsupported dtype"},
      {"{'descr': '|u1', 'fortran_order': False, 'shape': (40,)}", 40, 1, 0, "an unsupported dtype"},
      {"{'descr': 'float32', 'fortran_order': False, 'shape': (40,)}", 160, 1, 0, "an unsupported dtype spelling"},
      {"{'descr': '<f9', 'fortran_order': False, 'shape': (40,)}"},
      {"{'descr': 4, 'fortran_order': False, 'shape': (40,)}"},
      {"{'descr': b'<f4', 'fortran_order': False, 'shape': (40,)}"},
      {"{'descr': rb'<f4', 'fortran_order': False, 'shape': (40,)}"},
      {"{'descr': f'<f4', 'fortran_order': False, 'shape': (40,)}"},
      {"{'descr': '<' 'f4', 'fortran_order': False, 'shape': (40,)}"},
      {"{'descr': u'<f4', 'fortran_order': False, 'shape': (40,)}"},
      {"{'descr': r'<f4', 'fortran_order': False, 'shape': (40,)}"},
      {"{u'descr': '<f4', 'fortran_order': False, R'shape': (40,)}"},
      {"{('descr'): '<f4', 'fortran_order': False, 'shape': (40,)}"},
      {"{'descr': '<f\\x34', 'fortran_order': False, 'shape': (40,)}", 160, 1, 0, "a backslash escape"},
      {"{'descr': '''<f4''', 'fortran_order': False, 'shape': (40,)}", 160, 1, 0, "a triple-quoted string"},
      {"{'descr': '<f4, 'fortran_order': False, 'shape': (40,)}"},
      {"{'descr: '<f4', 'fortran_order': False, 'shape': (40,)}"},
      {"{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (40,)}"},
      {"{'descr': \"<f4', 'fortran_order': False, 'shape': (40,)}"},
      // Layout: whitespace, comments, what may surround the dict.
      {"  {'descr': '<f4', 'fortran_order': False, 'shape': (40,)}"},
      {"\n{'descr': '<f4', 'fortran_order': False, 'shape': (40,)}"},
      {"# hello\n{'descr': '<f4', 'fortran_order': False, 'shape': (40,)}"},
      {F + "(40,)} # c\n"},
      {"{'descr': '<f4', # c\n 'fortran_order': False, 'shape': (40, # c\n)}"},
      {"{'descr':\t'<f4',\r'fortran_order':\r\n False,\n'shape':(40,\n)}"},
      {F + "(40,)}\t\r\n"},
      {F + "(40,)}\x0c"},
      {F + "(40,)}" + std::string(1, '\0')},
      {F + "(40,)}\x0b"},
      {F + "(40,)}\x01"},
      {F + "(40,)}\\\n"},
      {F + "(4\\\n0,)}"},
      {F + "(40,), **{}}"},
      {F + "(40,),,}"},
      {F + "(40,)}{}"},
      {F + "(40,)} x"},
      {"({'descr': '<f4', 'fortran_order': False, 'shape': (40,)})", 160, 1, 0, "a parenthesised dict"},
      {"[{'descr': '<f4', 'fortran_order': False, 'shape': (40,)}]"},
      {"{'descr' '<f4', 'fortran_order': False, 'shape': (40,)}"},
      {"{'descr': '<f4' 'fortran_order': False, 'shape': (40,)}"},
      {"{'descr': '<f4', 'fortran_order': False 'shape': (40,)}"},
      {F + "(40,)}\xe9"},
      {F + "(40,)}#\xe9", 160, 1, 0, "a non-ASCII byte in a comment"},
      {F + "(40,)}#\xe9", 160, 3},
      {F + "(40,)}#\xc3\xa9", 160, 3, 0, "a non-ASCII byte in a comment"},
      {"{'d\xe9scr': '<f4', 'fortran_order': False, 'shape': (40,)}"},
      // The data part and the preamble.
      {F + "(40,)}", 161, 1, 0, "trailing bytes after the data"},
      {F + "(40,)}", 159},
      {F + "(40,)}", 160, 1, 1},
      {F + "(40,)}", 160, 0},
      {F + "(40,)}", 160, 4},
      {F + "(40,)}", 160, 2},
      {F + "(40,)}", 160, 3},
  };
}

}  // namespace

TEST_CASE("npy: header verdicts agree with NumPy's reader") {
  const std::vector<hcase> cs = cases();
  const std::string list = scratch("npy_cases.txt"), verdicts = scratch("npy_verdicts.txt");
  {
    std::ofstream l(list);
    for (std::size_t i = 0; i < cs.size(); ++i) {
      const std::string p = scratch("npy_case_" + std::to_string(i) + ".npy");
      std::ofstream(p, std::ios::binary) << file_bytes(cs[i]);
      l << p << "\n";
    }
  }
  if (!topofr::test::oracle("npy_oracle.py", {list, verdicts})) return;
  std::ifstream v(verdicts);
  for (std::size_t i = 0; i < cs.size(); ++i) {
    std::string line;
    REQUIRE(std::getline(v, line));
    const std::string p = scratch("npy_case_" + std::to_string(i) + ".npy");
    std::string ours, message;
    try {
      const npy::array a = npy::read(p);
      std::string dims;
      for (std::size_t k = 0; k < a.shape.size(); ++k) dims += (k ? "," : "") + std::to_string(a.shape[k]);
      ours = std::string("ACCEPT ") + npy::descr(a.type) + " " + dims;
      // The in-memory parser gives the same array.
      const std::string bytes = file_bytes(cs[i]);
      const npy::array b = npy::parse(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), "mem");
      CHECK((b.type == a.type && b.shape == a.shape && b.bytes == a.bytes));
    } catch (const topofr::error& e) {
      ours = "REFUSE";
      message = e.what();
    }
    const std::string numpy_verdict = line.substr(0, 6);
    INFO("case " << i << ": header " << npy::detail::printable(cs[i].header) << " (format " << cs[i].major << "."
                 << cs[i].minor << ", " << cs[i].data_bytes << " data bytes)\n  numpy: " << line
                 << "\n  topofr: " << ours << " " << message);
    if (cs[i].stricter) {
      INFO("topofr is stricter here: " << cs[i].stricter);
      CHECK(numpy_verdict == "ACCEPT");
      CHECK(ours == "REFUSE");
    } else if (numpy_verdict == "ACCEPT") {
      CHECK(ours == line);
    } else {
      CHECK(ours == "REFUSE");
    }
    if (ours == "REFUSE") {
      CHECK(message.find("topofr::npy::read: " + p + ": ") == 0);  // names the function and the file
      CHECK(message.find('\n') == std::string::npos);
    }
  }
}

TEST_CASE("npy: the messages name the defect") {
  auto refuse = [](const std::string& header, std::uint64_t data = 160) {
    hcase c;
    c.header = header;
    c.data_bytes = data;
    const std::string b = file_bytes(c);
    try {
      npy::parse(reinterpret_cast<const unsigned char*>(b.data()), b.size(), "x.npy");
    } catch (const topofr::error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  using Catch::Matchers::Contains;
  CHECK_THAT(refuse(F + "(5, 8), 'shape': (8, 5), }"),
             Contains("topofr::npy::parse: x.npy: header has the key 'shape' more than once"));
  CHECK_THAT(refuse(F + "(40), }"), Contains("shape must be a tuple") && Contains("got 40"));
  CHECK_THAT(refuse(F + "(40,), 'extra': 1}"), Contains("unknown key 'extra'"));
  CHECK_THAT(refuse("{'descr': '<f4', 'shape': (40,)}"), Contains("no 'fortran_order' key"));
  CHECK_THAT(refuse(F + "(-40,)}"), Contains("non-negative") && Contains("(-40,)"));
  CHECK_THAT(refuse(F + "(0, 2305843009213693952)}", 0), Contains("too large"));
  CHECK_THAT(refuse(F + "(40,)}", 159), Contains("needs 160 data bytes, the file has 159 (truncated)"));
  CHECK_THAT(refuse(F + "(40,)}", 161), Contains("(trailing bytes)"));
  CHECK_THAT(refuse(F + "(40,)}\x01"), Contains("\\x01"));
  CHECK(refuse(F + "(40,)}") == "accepted");
}

TEST_CASE("npy: huge empty shapes are sized without overflow") {
  // (0, 2^30, 2^30) float32: NumPy accepts it (2^60 x 4 bytes fits in int64); every product of its
  // dimensions fits in index_t, and the array is empty.
  hcase c;
  c.header = F + "(0, 1073741824, 1073741824)}";
  c.data_bytes = 0;
  const std::string b = file_bytes(c);
  const npy::array a = npy::parse(reinterpret_cast<const unsigned char*>(b.data()), b.size(), "x.npy");
  CHECK(a.size() == 0);
  CHECK(a.shape == std::vector<index_t>{0, index_t(1) << 30, index_t(1) << 30});
  CHECK(a.as<float>("x").empty());
}

TEST_CASE("npy: write -> read round trip, every prefix of a file is refused") {
  const std::vector<std::vector<index_t>> shapes = {{}, {0}, {5}, {2, 3, 4}, {3, 0, 2}};
  for (const auto& shape : shapes) {
    index_t n = 1;
    for (index_t d : shape) n *= d;
    std::vector<double> v(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) v[i] = 0.5 * static_cast<double>(i) - 3;
    const std::string p = scratch("npy_roundtrip.npy");
    npy::write(p, v.data(), shape);
    const npy::array a = npy::read(p);
    CHECK(a.type == npy::dtype::float64);
    CHECK(a.shape == shape);
    CHECK(a.as<double>("x") == v);
    std::ifstream f(p, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    for (std::size_t k = 0; k < bytes.size(); ++k)
      CHECK_THROWS_AS(npy::parse(reinterpret_cast<const unsigned char*>(bytes.data()), k, "prefix"), topofr::error);
    CHECK_NOTHROW(npy::parse(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), "whole"));
  }
}
