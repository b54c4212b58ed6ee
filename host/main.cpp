#include "cli/commands.hpp"

int main(int argc, char** argv) { return pipehost::host::main_command(argc, argv); }
