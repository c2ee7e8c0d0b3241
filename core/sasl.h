#pragma once
#include "mk-core.h"
