// examples/cli/args.hpp — the `topofr` tool's command line: each subcommand's flags (name, metavar, help),
// declared once and handed to CLI11, and `args`, the parsed values of one invocation with the typed
// readers the subcommands use (numbers, integers in a range, choices), whose errors name the flag and
// the value.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace topofr_cli {

struct flag {
  const char* name;     // "--out"
  const char* metavar;  // "P.npy"; nullptr for a switch that takes no value
  const char* help;
};

class args;
using runner = int (*)(const args&);

/// One subcommand: its synopsis and help, its flags and what runs it.
struct command {
  const char* name;
  const char* usage;    // one synopsis line (without "topofr <name>")
  const char* summary;  // what it computes
  std::vector<flag> flags;
  runner run;
  const char* notes = "";
};

/// The flags every subcommand accepts (--device, --dtype, --repeat; --help is CLI11's).
const std::vector<flag>& common_flags();

/// Declares `cmd`'s flags and the common flags on the CLI11 subcommand `sub`.
void declare(CLI::App& sub, const command& cmd);

/// The values of one parsed invocation, by flag name.
class args {
 public:
  /// Reads what CLI11 parsed into `sub` (declared by declare()): refuses leftovers (unknown flags, stray
  /// arguments), a flag given twice, and a value that is missing (a following "--flag") or empty.
  args(const command& cmd, const CLI::App& sub);

  bool has(const std::string& name) const { return values_.count(name) != 0; }
  std::optional<std::string> get(const std::string& name) const;
  std::string required(const std::string& name) const;
  /// A finite number, or `fallback` when the flag is absent.
  double number(const std::string& name, double fallback) const;
  /// number() that must be > 0.
  double positive(const std::string& name, double fallback) const;
  /// An integer in [min, max], or `fallback` when the flag is absent.
  long integer(const std::string& name, long fallback, long min, long max = 2147483647L) const;
  /// One of `choices`, or `fallback` when the flag is absent.
  std::string choice(const std::string& name, const std::vector<std::string>& choices,
                     const std::string& fallback) const;

 private:
  const command& cmd_;
  std::map<std::string, std::string> values_;
};

}  // namespace topofr_cli
