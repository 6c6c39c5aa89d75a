//! Pure, seeded generators of client operations. Each workload names the
//! checker its history needs. Generators never read a clock or do I/O: time
//! arrives in the context the interpreter (the harness runner) passes in.
