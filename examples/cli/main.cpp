// topofr — every TopoFR building block as a command on .npy files, so any language can use the library.
//
//   topofr <subcommand> [flags]        topofr --help        topofr <subcommand> --help
//
// Exit codes: 0 success, 2 usage error or invalid input (one line on stderr), 1 I/O failure.
// The program converts files to views, checks what only it knows (which flag a file came from, its rank,
// the agreement of shapes between files, sizes), and leaves the checks of values to the library, whose
// messages it passes through.
//
// This file: the command line (CLI11: subcommands, flags, help) and the one-line error report. The
// subcommands live in pairs.cpp, isa.cpp, gum.cpp and heads.cpp; files in io.hpp; devices in device.hpp.
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <topofr/topofr.hpp>

#include "args.hpp"
#include "commands.hpp"
#include "common.hpp"

namespace topofr_cli {
namespace {

constexpr const char* exit_codes = "exit codes: 0 success, 2 usage error or invalid input, 1 I/O failure.";

/// CLI11's help with the tool's synopsis line in place of "Usage: topofr pairs [OPTIONS]".
class formatter : public CLI::Formatter {
 public:
  std::string make_usage(const CLI::App* app, std::string name) const override {
    for (const command* c : all_commands())
      if (app->get_name() == c->name) return str("usage: topofr ", c->name, " ", c->usage, "\n");
    if (app->get_parent() == nullptr)
      return "usage: topofr <subcommand> [flags]   (topofr <subcommand> --help for its flags)\n";
    return CLI::Formatter::make_usage(app, std::move(name));
  }
};

/// Exactly one printable line on stderr (messages may quote a corrupt header).
int fail(const std::string& who, const std::string& msg, int code) {
  std::string line = msg;
  for (char& ch : line)
    if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = ch == '\n' ? ' ' : '?';
  while (!line.empty() && line.back() == ' ') line.pop_back();
  std::fflush(stdout);
  std::fprintf(stderr, "%s: %s\n", who.c_str(), line.c_str());
  return code;
}

}  // namespace
}  // namespace topofr_cli

int main(int argc, char** argv) {
  using namespace topofr_cli;
  CLI::App app{"TopoFR building blocks on .npy files (little-endian float32/float64/int32/int64, C order).",
               "topofr"};
  app.formatter(std::make_shared<formatter>());
  app.get_formatter()->column_width(30);
  app.set_help_flag("-h,--help", "print this help and exit");
  app.require_subcommand(1, 1);
  app.footer(str("every subcommand: [--device cpu|cuda] [--dtype float32|float64] [--repeat N] [--help]\n",
                 exit_codes));
  std::vector<std::pair<const command*, CLI::App*>> subs;
  for (const command* c : all_commands()) {
    CLI::App* sub = app.add_subcommand(c->name, c->summary);
    declare(*sub, *c);
    sub->footer(str(c->notes, *c->notes ? "\n" : "", exit_codes));
    subs.emplace_back(c, sub);
  }

  // The subcommand comes first; anything else there gets the tool's own one-line answer.
  if (argc < 2) return fail("topofr", "missing subcommand (see topofr --help)", 2);
  const std::string first = argv[1];
  if (first == "help") {
    std::printf("%s", app.help().c_str());
    return 0;
  }
  const command* cmd = nullptr;
  CLI::App* sub = nullptr;
  for (const auto& [c, s] : subs)
    if (first == c->name) cmd = c, sub = s;
  if (!cmd && first != "-h" && first != "--help")
    return fail("topofr", str("unknown subcommand '", first, "' (see topofr --help)"), 2);
  const std::string who = cmd ? str("topofr ", cmd->name) : std::string("topofr");

  // A switch given a value ("--no-symmetrize=yes"): CLI11 would read it as a boolean; the tool refuses it.
  if (cmd)
    for (int i = 2; i < argc; ++i) {
      const std::string tok = argv[i];
      const auto eq = tok.find('=');
      if (tok.rfind("--", 0) != 0 || eq == std::string::npos) continue;
      for (const flag& f : cmd->flags)
        if (!f.metavar && tok.compare(0, eq, f.name) == 0)
          return fail(who, str(f.name, ": takes no value, got '", tok.substr(eq + 1), "'"), 2);
    }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);  // the help of the subcommand given, or of topofr, on stdout; exit 0
  } catch (const CLI::ArgumentMismatch& e) {
    // "--out: 1 required P.npy missing": a flag at the end of the line without its value.
    const std::string m = e.what();
    const std::string name = m.substr(0, m.find(':'));
    if (cmd)
      for (const auto* fl : {&cmd->flags, &common_flags()})
        for (const flag& f : *fl)
          if (name == f.name && f.metavar) return fail(who, str(f.name, ": missing value (", f.metavar, ")"), 2);
    return fail(who, m, 2);
  } catch (const CLI::ParseError& e) {
    return fail(who, e.what(), 2);
  }

  try {
    const args a(*cmd, *sub);
    return cmd->run(a);
  } catch (const usage_error& e) {
    return fail(who, e.what(), 2);
  } catch (const io_error& e) {
    return fail(who, e.what(), 1);
  } catch (const topofr::error& e) {  // invalid input found by the library
    return fail(who, e.what(), 2);
  } catch (const std::bad_alloc&) {
    return fail(who, "out of memory (input too large)", 1);
  } catch (const std::exception& e) {
    return fail(who, std::string("internal error: ") + e.what(), 1);
  }
}
