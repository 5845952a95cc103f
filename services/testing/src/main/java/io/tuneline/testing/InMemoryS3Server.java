package io.tuneline.testing;

import java.net.ServerSocket;
import java.net.URI;
import java.util.Properties;
import org.gaul.s3proxy.AuthenticationType;
import org.gaul.s3proxy.S3Proxy;
import org.jclouds.ContextBuilder;
import org.jclouds.blobstore.BlobStoreContext;

/**
 * An S3 server on a loopback port backed by memory: S3Proxy over jclouds' {@code transient}
 * blobstore. Speaks the same protocol as MinIO, so the MinIO client works against it unchanged.
 */
public final class InMemoryS3Server implements AutoCloseable {
    public static final String ACCESS_KEY = "test-access";
    public static final String SECRET_KEY = "test-secret";

    private final BlobStoreContext context;
    private final S3Proxy proxy;
    private final String endpoint;

    private InMemoryS3Server(BlobStoreContext context, S3Proxy proxy, String endpoint) {
        this.context = context;
        this.proxy = proxy;
        this.endpoint = endpoint;
    }

    public static InMemoryS3Server start() {
        return start(
                ContextBuilder.newBuilder("transient")
                        .credentials("identity", "credential")
                        .overrides(new Properties())
                        .build(BlobStoreContext.class));
    }

    /**
     * The same server keeping objects as files under {@code dir} (jclouds' filesystem-nio2, as
     * {@code ./platform} runs it): objects stream to disk, so data far larger than the heap fits.
     */
    public static InMemoryS3Server onDisk(java.nio.file.Path dir) {
        Properties properties = new Properties();
        // Absolute: with a relative directory S3Proxy 2.7's multipart completion looks for the
        // parts elsewhere and answers InvalidPart.
        properties.setProperty("jclouds.filesystem.basedir", dir.toAbsolutePath().toString());
        return start(
                ContextBuilder.newBuilder("filesystem-nio2")
                        .credentials("local", "local")
                        .overrides(properties)
                        .build(BlobStoreContext.class));
    }

    /**
     * S3Proxy's shaded Jetty logs through the JVM's log manager, and JBoss LogManager without a
     * configuration (a benchmark's or tool's plain {@code main}) has DEBUG on: Jetty then formats a
     * debug message per buffer of every request and response that nothing prints, which cost an
     * upload of 76 MB about 2 CPU seconds. The platform's store is a process of its own with its
     * own logging, so this server keeps that at INFO unless something configured it. Held in a
     * field: a logger nobody references may be collected with its level.
     */
    private static final java.util.logging.Logger SERVER_LOG =
            java.util.logging.Logger.getLogger("org.gaul");

    private static InMemoryS3Server start(BlobStoreContext context) {
        if (SERVER_LOG.getLevel() == null) {
            SERVER_LOG.setLevel(java.util.logging.Level.INFO);
        }
        try {
            int port;
            try (ServerSocket socket = new ServerSocket(0)) {
                port = socket.getLocalPort();
            }
            String endpoint = "http://127.0.0.1:" + port;
            S3Proxy proxy =
                    S3Proxy.builder()
                            .blobStore(context.getBlobStore())
                            .endpoint(URI.create(endpoint))
                            .awsAuthentication(
                                    AuthenticationType.AWS_V2_OR_V4, ACCESS_KEY, SECRET_KEY)
                            .build();
            proxy.start();
            long deadline = System.nanoTime() + 30_000_000_000L;
            while (!"STARTED".equals(proxy.getState())) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("S3Proxy did not start on " + endpoint);
                }
                Thread.sleep(5);
            }
            return new InMemoryS3Server(context, proxy, endpoint);
        } catch (Exception e) {
            context.close();
            throw new IllegalStateException("cannot start the in-memory S3 server", e);
        }
    }

    /**
     * An artifact store on this server with {@code bucket} created, in S3's smallest parts (so that
     * small test data goes up in several); the caller closes it.
     */
    public io.tuneline.common.store.ArtifactStore newStore(String bucket) {
        return newStore(bucket, io.tuneline.common.store.StoreSettings.MIN_PART_SIZE);
    }

    /** The same with the part size a service is configured with (benchmarks). */
    public io.tuneline.common.store.ArtifactStore newStore(String bucket, long partSize) {
        var store =
                new io.tuneline.common.store.ArtifactStore(settings(endpoint, bucket, partSize));
        store.ensureBucket();
        return store;
    }

    /**
     * Settings for {@code bucket} of a server of this kind at {@code endpoint} (this one's, or one
     * in another process), with its credentials; the other settings are the services' defaults.
     */
    public static io.tuneline.common.store.StoreSettings settings(
            String endpoint, String bucket, long partSize) {
        return new io.tuneline.common.store.StoreSettings(
                endpoint, ACCESS_KEY, SECRET_KEY, bucket, "us-east-1", partSize);
    }

    public String endpoint() {
        return endpoint;
    }

    @Override
    public void close() {
        try {
            proxy.stop();
        } catch (Exception e) {
            throw new IllegalStateException("cannot stop S3Proxy", e);
        } finally {
            context.close();
        }
    }
}
