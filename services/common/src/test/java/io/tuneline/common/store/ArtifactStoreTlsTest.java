package io.tuneline.common.store;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * An https store whose certificate a private CA signed (a MinIO tenant's): trusted with {@code
 * tuneline.store.ca-file}, refused without it, and a wrong file named in the error.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ArtifactStoreTlsTest {
    private Path dir;
    private LocalS3 server;
    private int port;
    private Path caFile;

    @BeforeAll
    void startHttpsServer() throws Exception {
        dir = Files.createTempDirectory("store-tls");
        // A self-signed certificate for 127.0.0.1 made with the JDK's keytool: the "private CA".
        Path keystore = dir.resolve("server.p12");
        keytool(
                "-genkeypair",
                "-alias",
                "s3",
                "-keyalg",
                "RSA",
                "-keysize",
                "2048",
                "-validity",
                "2",
                "-dname",
                "CN=127.0.0.1",
                "-ext",
                "san=ip:127.0.0.1",
                "-storetype",
                "PKCS12",
                "-keystore",
                keystore.toString(),
                "-storepass",
                "changeit",
                "-keypass",
                "changeit");
        caFile = dir.resolve("ca.crt");
        keytool(
                "-exportcert",
                "-rfc",
                "-alias",
                "s3",
                "-keystore",
                keystore.toString(),
                "-storepass",
                "changeit",
                "-file",
                caFile.toString());
        port = LocalS3.freePort();
        server = LocalS3.start(port, "key", "secret", Optional.of(keystore), "changeit");
    }

    @AfterAll
    void stop() throws Exception {
        server.close();
        try (var files = Files.walk(dir)) {
            files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }
    }

    @Test
    void theCaFileMakesThePrivatelySignedStoreTrusted() {
        try (ArtifactStore store = store(Optional.of(caFile))) {
            byte[] bytes = "weights".getBytes(StandardCharsets.UTF_8);
            store.put(store.uri("runs/a/model.bin"), bytes, "application/octet-stream");
            assertThat(store.exists(store.uri("runs/a/model.bin"))).isTrue();
        }
    }

    @Test
    void withoutItTheCertificateIsRefused() {
        try (ArtifactStore store = store(Optional.empty())) {
            assertThatThrownBy(() -> store.exists(store.uri("runs/a/model.bin")))
                    .hasStackTraceContaining("certification path");
        }
    }

    @Test
    void aMissingOrEmptyCaFileIsNamed() throws Exception {
        Path missing = dir.resolve("nope.crt");
        assertThatThrownBy(() -> store(Optional.of(missing)))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("tuneline.store.ca-file " + missing + " does not exist");
        Path empty = Files.writeString(dir.resolve("empty.crt"), "");
        assertThatThrownBy(() -> store(Optional.of(empty)))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining(empty.toString());
    }

    private ArtifactStore store(Optional<Path> ca) {
        return new ArtifactStore(
                LocalS3.settings("https://127.0.0.1:" + port, "key", "secret", Duration.ZERO)
                        .withCaFile(ca));
    }

    private static void keytool(String... args) throws Exception {
        Path java = Path.of(System.getProperty("java.home"), "bin", "keytool");
        List<String> command = new java.util.ArrayList<>(List.of(java.toString()));
        command.addAll(List.of(args));
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor()).as(out).isZero();
    }
}
