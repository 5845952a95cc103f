package io.tuneline.ingestion.source;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.sun.net.httpserver.HttpServer;
import io.tuneline.ingestion.config.IngestionConfig;
import io.tuneline.ingestion.validate.DatasetInvalidException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Fetching datasets over HTTP from a local server, and the rules that keep it safe. */
class HttpSourceTest {
    private HttpServer server;
    private String base;

    @BeforeEach
    void start() throws Exception {
        server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.createContext(
                "/data.jsonl",
                x -> {
                    byte[] body =
                            "{\"text\":\"hi\",\"label\":\"pos\"}\n"
                                    .getBytes(StandardCharsets.UTF_8);
                    x.sendResponseHeaders(200, body.length);
                    x.getResponseBody().write(body);
                    x.close();
                });
        server.createContext(
                "/moved",
                x -> {
                    x.getResponseHeaders().add("Location", "http://10.0.0.1/secret");
                    x.sendResponseHeaders(302, -1);
                    x.close();
                });
        server.start();
        base = "http://127.0.0.1:" + server.getAddress().getPort();
    }

    @AfterEach
    void stop() {
        server.stop(0);
    }

    private static IngestionConfig.Http config(boolean allowPrivate, List<String> hosts) {
        return new IngestionConfig.Http() {
            @Override
            public Optional<List<String>> allowedHosts() {
                return hosts.isEmpty() ? Optional.empty() : Optional.of(hosts);
            }

            @Override
            public boolean allowPrivateAddresses() {
                return allowPrivate;
            }

            @Override
            public Duration timeout() {
                return Duration.ofSeconds(5);
            }
        };
    }

    @Test
    void aDatasetIsStreamedFromAnAllowedServer() throws Exception {
        try (InputStream in =
                new HttpSource(config(true, List.of())).open(URI.create(base + "/data.jsonl"))) {
            assertThat(new String(in.readAllBytes(), StandardCharsets.UTF_8))
                    .contains("\"label\":\"pos\"");
        }
    }

    @Test
    void loopbackIsRefusedUnlessAllowed() {
        assertThatThrownBy(
                        () ->
                                new HttpSource(config(false, List.of()))
                                        .open(URI.create(base + "/data.jsonl")))
                .isInstanceOf(DatasetInvalidException.class)
                .hasMessageContaining("non-public address 127.0.0.1");
    }

    @Test
    void aHostOutsideTheAllowListIsRefused() {
        assertThatThrownBy(
                        () ->
                                new HttpSource(config(true, List.of(".example.org")))
                                        .open(URI.create(base + "/data.jsonl")))
                .isInstanceOf(DatasetInvalidException.class)
                .hasMessageContaining(
                        "host 127.0.0.1 is not in tuneline.ingestion.http.allowed-hosts");
    }

    @Test
    void redirectsAreRefusedRatherThanFollowedPastTheChecks() {
        assertThatThrownBy(
                        () ->
                                new HttpSource(config(true, List.of()))
                                        .open(URI.create(base + "/moved")))
                .isInstanceOf(DatasetInvalidException.class)
                .hasMessageContaining("it redirects (HTTP 302 to http://10.0.0.1/secret)");
    }

    @Test
    void aMissingFileIsReportedAsNotFound() {
        assertThatThrownBy(
                        () ->
                                new HttpSource(config(true, List.of()))
                                        .open(URI.create(base + "/nope.jsonl")))
                .isInstanceOf(DatasetInvalidException.class)
                .satisfies(
                        e ->
                                assertThat(((DatasetInvalidException) e).code())
                                        .isEqualTo("SOURCE_NOT_FOUND"));
    }

    @Test
    void privateAndSharedAddressRangesAreNotPublic() throws Exception {
        for (String a :
                List.of(
                        "10.1.2.3",
                        "172.16.0.1",
                        "192.168.1.1",
                        "169.254.169.254",
                        "100.64.0.1",
                        "fd00::1",
                        "::1",
                        "0.0.0.0")) {
            assertThat(HttpSource.isPublic(InetAddress.getByName(a))).as(a).isFalse();
        }
        for (String a : List.of("93.184.216.34", "8.8.8.8", "2606:4700::1111")) {
            assertThat(HttpSource.isPublic(InetAddress.getByName(a))).as(a).isTrue();
        }
    }

    @Test
    void aStreamPastTheSizeLimitFailsAsSoonAsItCrossesIt() throws Exception {
        byte[] data = new byte[5000];
        try (InputStream in =
                new SizeLimitedInputStream(
                        new java.io.ByteArrayInputStream(data), 4096, "dataset.uri x")) {
            assertThat(in.readNBytes(4096)).hasSize(4096);
            assertThatThrownBy(in::read)
                    .isInstanceOf(DatasetInvalidException.class)
                    .hasMessage(
                            "dataset.uri x is larger than tuneline.ingestion.max-bytes (4096 bytes)");
        }
    }
}
