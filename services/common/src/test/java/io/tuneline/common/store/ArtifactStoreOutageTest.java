package io.tuneline.common.store;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** A store that is down is waited out for {@code retryFor}; a store that refuses is not. */
class ArtifactStoreOutageTest {
    private static final String KEY = "key";
    private static final String SECRET = "secret";

    private final ScheduledExecutorService later = Executors.newSingleThreadScheduledExecutor();
    private volatile LocalS3 proxy;

    @AfterEach
    void stop() throws Exception {
        later.shutdownNow();
        if (proxy != null) {
            proxy.close();
        }
    }

    @Test
    void aWriteDuringAnOutageSucceedsOnceTheStoreIsBack() throws Exception {
        int port = LocalS3.freePort();
        // Nothing listens on the port when the write starts; the server comes up 2 s later.
        later.schedule(this.startsServer(port), 2, TimeUnit.SECONDS);
        try (ArtifactStore store = store(port, SECRET, Duration.ofSeconds(60))) {
            byte[] bytes = "weights".getBytes(StandardCharsets.UTF_8);
            var ref = store.put(store.uri("runs/a/model.bin"), bytes, "application/octet-stream");
            assertThat(proxy).as("the write returned before the server was up").isNotNull();
            assertThat(ref.getSizeBytes()).isEqualTo(bytes.length);
            try (var in = store.get(store.uri("runs/a/model.bin"))) {
                assertThat(in.readAllBytes()).isEqualTo(bytes);
            }
        }
    }

    @Test
    void aStatWaitsForTheStoreToComeBack() throws Exception {
        int port = LocalS3.freePort();
        later.schedule(this.startsServer(port), 2, TimeUnit.SECONDS);
        try (ArtifactStore store = store(port, SECRET, Duration.ofSeconds(60))) {
            // Issued while nothing listens: answered once the server is there, not failed.
            assertThat(store.exists(store.uri("runs/a/controller.json"))).isFalse();
            assertThat(proxy).isNotNull();
        }
    }

    @Test
    void anOutageLongerThanRetryForFailsNamingTheObjectAndTheRetries() throws Exception {
        int port = LocalS3.freePort();
        try (ArtifactStore store = store(port, SECRET, Duration.ofMillis(1500))) {
            long t0 = System.nanoTime();
            assertThatThrownBy(
                            () ->
                                    store.put(
                                            store.uri("runs/a/controller.json"),
                                            new byte[] {1},
                                            "application/json"))
                    .isInstanceOf(ArtifactStoreException.class)
                    .hasMessageContaining("cannot write s3://bkt/runs/a/controller.json")
                    .hasMessageContaining("retries)");
            assertThat(Duration.ofNanos(System.nanoTime() - t0))
                    .isGreaterThanOrEqualTo(Duration.ofMillis(1400));
        }
    }

    @Test
    void aRefusalIsNotRetried() throws Exception {
        int port = LocalS3.freePort();
        startServer(port);
        try (ArtifactStore store = store(port, "wrong-secret", Duration.ofSeconds(60))) {
            long t0 = System.nanoTime();
            assertThatThrownBy(() -> store.get(store.uri("runs/a/controller.json")))
                    .isInstanceOf(ArtifactStoreException.class)
                    .hasMessageNotContaining("retries");
            assertThat(Duration.ofNanos(System.nanoTime() - t0)).isLessThan(Duration.ofSeconds(30));
        }
    }

    private java.util.concurrent.Callable<Void> startsServer(int port) {
        return () -> {
            startServer(port);
            return null;
        };
    }

    /** An S3 server on {@code port} with bucket {@code bkt}. */
    private synchronized void startServer(int port) throws Exception {
        proxy = LocalS3.start(port, KEY, SECRET, java.util.Optional.empty(), "");
    }

    private static ArtifactStore store(int port, String secret, Duration retryFor) {
        return new ArtifactStore(
                LocalS3.settings("http://127.0.0.1:" + port, KEY, secret, retryFor));
    }
}
