// examples/cli/args.cpp — the flags of a subcommand declared to CLI11, and the typed readers of args.
#include "args.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include <CLI/CLI.hpp>

#include "common.hpp"

namespace topofr_cli {

const std::vector<flag>& common_flags() {
  static const std::vector<flag> f = {
      {"--device", "cpu|cuda", "where to compute (default cpu; cuda needs a CUDA build)"},
      {"--dtype", "float32|float64", "compute precision (default: the inputs' float dtype; float64 if any "
                                     "input is float64); inputs are converted"},
      {"--repeat", "N", "run the computation alone (no file I/O) N >= 1 times; print median_ms=<value>"},
  };
  return f;
}

namespace {

void declare_flags(CLI::App& sub, const std::vector<flag>& flags, const std::string& group) {
  for (const flag& f : flags) {
    // Every value is read as a string here and checked by args' typed readers (their messages name the
    // flag and the value); a flag given twice is kept (TakeAll) so that args can refuse it by name.
    if (f.metavar)
      sub.add_option(f.name, f.help)->type_name(f.metavar)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
          ->group(group);
    else
      sub.add_flag(f.name, f.help)->group(group);
  }
}

}  // namespace

void declare(CLI::App& sub, const command& cmd) {
  sub.allow_extras();  // leftovers are refused by args, with the tool's own message
  sub.set_help_flag("-h,--help", "print this help and exit");
  declare_flags(sub, cmd.flags, "flags");
  declare_flags(sub, common_flags(), "common flags");
}

args::args(const command& cmd, const CLI::App& sub) : cmd_(cmd) {
  auto all = cmd.flags;
  all.insert(all.end(), common_flags().begin(), common_flags().end());
  for (const flag& f : all) {
    const CLI::Option* o = sub.get_option(f.name);
    if (o->count() == 0) continue;
    if (o->count() > 1) throw usage_error(str(f.name, ": given more than once"));
    if (!f.metavar) {
      values_[f.name] = "";
      continue;
    }
    const std::string v = o->results().empty() ? std::string() : o->results().front();
    // A following "--flag" is a forgotten value, not a value (negative numbers have one dash).
    if (v.rfind("--", 0) == 0) throw usage_error(str(f.name, ": missing value (", f.metavar, ")"));
    if (v.empty()) throw usage_error(str(f.name, ": empty value"));
    values_[f.name] = v;
  }
  const std::vector<std::string> rest = sub.remaining();
  if (!rest.empty()) {
    const std::string& tok = rest.front();
    if (tok.rfind("-", 0) == 0) throw usage_error(str("unknown flag '", tok, "' (see topofr ", cmd.name, " --help)"));
    throw usage_error(str("unexpected argument '", tok, "' (every value follows its flag; see topofr ", cmd.name,
                          " --help)"));
  }
}

std::optional<std::string> args::get(const std::string& name) const {
  const auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

std::string args::required(const std::string& name) const {
  if (!has(name)) throw usage_error(str(name, ": required (see topofr ", cmd_.name, " --help)"));
  return values_.at(name);
}

double args::number(const std::string& name, double fallback) const {
  const auto v = get(name);
  if (!v) return fallback;
  const char* s = v->c_str();
  char* end = nullptr;
  errno = 0;
  const double x = std::strtod(s, &end);
  if (end == s || *end != '\0' || errno == ERANGE || !std::isfinite(x))
    throw usage_error(str(name, ": expected a finite number, got '", *v, "'"));
  return x;
}

double args::positive(const std::string& name, double fallback) const {
  const double x = number(name, fallback);
  if (!(x > 0)) throw usage_error(str(name, ": must be > 0, got ", *get(name)));
  return x;
}

long args::integer(const std::string& name, long fallback, long min, long max) const {
  const auto v = get(name);
  if (!v) return fallback;
  const char* s = v->c_str();
  char* end = nullptr;
  errno = 0;
  const long x = std::strtol(s, &end, 10);
  if (end == s || *end != '\0' || errno == ERANGE) throw usage_error(str(name, ": expected an integer, got '", *v, "'"));
  if (x < min || x > max) throw usage_error(str(name, ": must be in [", min, ", ", max, "], got ", *v));
  return x;
}

std::string args::choice(const std::string& name, const std::vector<std::string>& choices,
                         const std::string& fallback) const {
  const auto v = get(name);
  if (!v) return fallback;
  if (std::find(choices.begin(), choices.end(), *v) == choices.end()) {
    std::string list;
    for (const auto& c : choices) list += (list.empty() ? "" : "|") + c;
    throw usage_error(str(name, ": expected ", list, ", got '", *v, "'"));
  }
  return *v;
}

}  // namespace topofr_cli
