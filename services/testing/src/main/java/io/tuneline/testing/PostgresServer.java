package io.tuneline.testing;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * A private PostgreSQL server for tests, from the Debian {@code postgresql} package (which {@code
 * .ci/run} installs): its own data directory and port, fsync off, removed on close. PostgreSQL
 * refuses to run as root, so under root it runs as the package's {@code postgres} user.
 */
public final class PostgresServer implements AutoCloseable {
    public static final String USER = "tuneline";
    public static final String DATABASE = "tuneline";

    private final Path bin;
    private final Path dataDir;
    private final int port;
    private final boolean asPostgresUser;
    private Process server;

    private PostgresServer(Path bin, Path dataDir, int port, boolean asPostgresUser) {
        this.bin = bin;
        this.dataDir = dataDir;
        this.port = port;
        this.asPostgresUser = asPostgresUser;
    }

    /** Initialises a data directory, starts the server and creates database {@value DATABASE}. */
    public static PostgresServer start() {
        Path bin = findBin();
        boolean root = "root".equals(System.getProperty("user.name"));
        try {
            Path dir = Files.createTempDirectory("tuneline-pg-");
            PostgresServer pg = new PostgresServer(bin, dir, freePort(), root);
            if (root) {
                run(List.of("chown", "postgres:postgres", dir.toString()), Duration.ofSeconds(10));
            }
            pg.runTool(
                    List.of(
                            "initdb",
                            "-D",
                            dir.resolve("data").toString(),
                            "-U",
                            USER,
                            "--auth=trust",
                            "-E",
                            "UTF8",
                            "--no-locale"),
                    Duration.ofSeconds(120));
            pg.launch();
            pg.awaitReady(Duration.ofSeconds(60));
            pg.runTool(
                    List.of(
                            "createdb",
                            "-h",
                            "127.0.0.1",
                            "-p",
                            Integer.toString(pg.port),
                            "-U",
                            USER,
                            DATABASE),
                    Duration.ofSeconds(30));
            return pg;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot start PostgreSQL from " + bin, e);
        }
    }

    public String jdbcUrl() {
        return "jdbc:postgresql://127.0.0.1:" + port + "/" + DATABASE;
    }

    public int port() {
        return port;
    }

    /** A new connection to the database, as {@value USER}. */
    public Connection connect() throws SQLException {
        return DriverManager.getConnection(jdbcUrl(), USER, "");
    }

    private void launch() throws IOException {
        List<String> cmd =
                command(
                        List.of(
                                "postgres",
                                "-D",
                                dataDir.resolve("data").toString(),
                                "-p",
                                Integer.toString(port),
                                "-k",
                                dataDir.toString(),
                                "-c",
                                "listen_addresses=127.0.0.1",
                                "-c",
                                "fsync=off",
                                "-c",
                                "synchronous_commit=off",
                                "-c",
                                "full_page_writes=off"));
        server =
                new ProcessBuilder(cmd)
                        .redirectErrorStream(true)
                        .redirectOutput(dataDir.resolve("server.log").toFile())
                        .start();
    }

    private void awaitReady(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            if (!server.isAlive()) {
                throw new IllegalStateException("PostgreSQL exited at start-up: " + log());
            }
            try (Connection ignored =
                    DriverManager.getConnection(
                            "jdbc:postgresql://127.0.0.1:" + port + "/postgres", USER, "")) {
                return;
            } catch (SQLException notYet) {
                try {
                    server.waitFor(100, TimeUnit.MILLISECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException("interrupted waiting for PostgreSQL", e);
                }
            }
        }
        throw new IllegalStateException("PostgreSQL not ready within " + timeout + ": " + log());
    }

    @Override
    public void close() {
        try {
            if (server != null && server.isAlive()) {
                runTool(
                        List.of(
                                "pg_ctl",
                                "-D",
                                dataDir.resolve("data").toString(),
                                "-m",
                                "fast",
                                "-w",
                                "stop"),
                        Duration.ofSeconds(60));
                server.waitFor(30, TimeUnit.SECONDS);
            }
        } catch (RuntimeException | InterruptedException e) {
            server.destroyForcibly();
        } finally {
            deleteTree(dataDir);
        }
    }

    private void runTool(List<String> args, Duration timeout) {
        run(command(args), timeout);
    }

    private List<String> command(List<String> args) {
        List<String> cmd = new ArrayList<>();
        if (asPostgresUser) {
            cmd.addAll(List.of("runuser", "-u", "postgres", "--"));
        }
        cmd.add(bin.resolve(args.get(0)).toString());
        cmd.addAll(args.subList(1, args.size()));
        return cmd;
    }

    private static void run(List<String> cmd, Duration timeout) {
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            byte[] out = p.getInputStream().readAllBytes();
            if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS) || p.exitValue() != 0) {
                throw new IllegalStateException(
                        String.join(" ", cmd)
                                + " failed: "
                                + new String(out, StandardCharsets.UTF_8));
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted running " + cmd, e);
        }
    }

    private String log() {
        try {
            return Files.readString(dataDir.resolve("server.log"));
        } catch (IOException e) {
            return "(no server log)";
        }
    }

    /** The newest {@code /usr/lib/postgresql/<version>/bin}, or {@code $PG_BIN}. */
    static Path findBin() {
        String env = System.getenv("PG_BIN");
        if (env != null && !env.isBlank()) {
            return Paths.get(env);
        }
        Path root = Paths.get("/usr/lib/postgresql");
        try (Stream<Path> versions = Files.list(root)) {
            return versions.map(v -> v.resolve("bin"))
                    .filter(b -> Files.isExecutable(b.resolve("initdb")))
                    .max(
                            Comparator.comparingInt(
                                    b ->
                                            Integer.parseInt(
                                                    b.getParent()
                                                            .getFileName()
                                                            .toString()
                                                            .replaceAll("\\D", "0"))))
                    .orElseThrow(PostgresServer::notInstalled);
        } catch (IOException e) {
            throw notInstalled();
        }
    }

    private static IllegalStateException notInstalled() {
        return new IllegalStateException(
                "PostgreSQL is not installed: install the Debian package 'postgresql' (.ci/run does)"
                        + " or set PG_BIN to a directory with initdb and postgres");
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> paths = Files.walk(dir)) {
            paths.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) {
            // A leftover temp directory is harmless.
        }
    }
}
