// A module that loads but fails while it runs: a bug, not a load failure.
throw new RangeError("the route's own code failed");
