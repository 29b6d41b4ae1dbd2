// The umbrella header alone, every block instantiated (tests/headers/check_warnings.sh).
#include <topofr/topofr.hpp>

#include "instantiate.hpp"
