//! PromQL function kernels: the numeric heart of every function, free of
//! AST and storage concerns so that each can be tested on its own. The
//! evaluator selects the data and calls these.
