// examples/cli/commands.hpp — the subcommands of `topofr`, one file each (pairs.cpp, isa.cpp, gum.cpp,
// heads.cpp for arcface and margin-ce): each returns its command (synopsis, flags, runner).
#pragma once

#include <vector>

#include "args.hpp"

namespace topofr_cli {

const command& pairs_command();
const command& isa_command();
const command& gum_command();
const command& arcface_command();
const command& margin_ce_command();

/// Every subcommand, in the order of `topofr --help`.
inline std::vector<const command*> all_commands() {
  return {&pairs_command(), &isa_command(), &gum_command(), &arcface_command(), &margin_ce_command()};
}

}  // namespace topofr_cli
