// Everything a plugin needs: #include <pipehost/sdk.hpp>
#pragma once
#include "pipehost/abi.hpp"
#include "pipehost/context.hpp"
#include "pipehost/options.hpp"
#include "pipehost/plugin.hpp"
#include "pipehost/record.hpp"
#include "pipehost/route.hpp"
#include "pipehost/stage.hpp"
#include "pipehost/status.hpp"
#include "pipehost/value.hpp"
