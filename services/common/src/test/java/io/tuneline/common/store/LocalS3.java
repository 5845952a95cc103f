package io.tuneline.common.store;

import java.net.ServerSocket;
import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Optional;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.gaul.s3proxy.AuthenticationType;
import org.gaul.s3proxy.S3Proxy;
import org.jclouds.ContextBuilder;
import org.jclouds.blobstore.BlobStoreContext;

/**
 * A real S3 server (S3Proxy over an in-memory blob store) with one bucket, for the store's own
 * tests: over http, or over https with a PKCS#12 key store.
 */
public final class LocalS3 implements AutoCloseable {
    public static final String BUCKET = "bkt";

    private final BlobStoreContext context;
    private final S3Proxy proxy;
    private final String endpoint;

    private LocalS3(BlobStoreContext context, S3Proxy proxy, String endpoint) {
        this.context = context;
        this.proxy = proxy;
        this.endpoint = endpoint;
    }

    /**
     * Starts a server on {@code port} answering {@code key}/{@code secret}, over https when {@code
     * keystore} is given, and returns once it listens.
     */
    public static LocalS3 start(
            int port, String key, String secret, Optional<Path> keystore, String password)
            throws Exception {
        BlobStoreContext context =
                ContextBuilder.newBuilder("transient")
                        .credentials("identity", "credential")
                        .overrides(new Properties())
                        .build(BlobStoreContext.class);
        context.getBlobStore().createContainerInLocation(null, BUCKET);
        String endpoint = (keystore.isPresent() ? "https" : "http") + "://127.0.0.1:" + port;
        S3Proxy.Builder builder =
                S3Proxy.builder()
                        .blobStore(context.getBlobStore())
                        .awsAuthentication(AuthenticationType.AWS_V2_OR_V4, key, secret);
        if (keystore.isPresent()) {
            builder.secureEndpoint(URI.create(endpoint))
                    .keyStore(keystore.get().toString(), password);
        } else {
            builder.endpoint(URI.create(endpoint));
        }
        S3Proxy proxy = builder.build();
        proxy.start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (!"STARTED".equals(proxy.getState()) && System.nanoTime() < deadline) {
            Thread.onSpinWait();
        }
        return new LocalS3(context, proxy, endpoint);
    }

    /** The blob store behind the server, to see what a test left there. */
    public org.jclouds.blobstore.BlobStore blobStore() {
        return context.getBlobStore();
    }

    /** A port nothing listens on now. */
    public static int freePort() throws java.io.IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    /** A store client for this server's bucket. */
    public ArtifactStore store(String key, String secret, Duration retryFor) {
        return new ArtifactStore(settings(endpoint, key, secret, retryFor));
    }

    /** Settings for the bucket of a server at {@code endpoint}, up or not. */
    public static StoreSettings settings(
            String endpoint, String key, String secret, Duration retryFor) {
        return new StoreSettings(
                endpoint, key, secret, BUCKET, "us-east-1", StoreSettings.MIN_PART_SIZE, retryFor);
    }

    @Override
    public void close() throws Exception {
        proxy.stop();
        context.close();
    }
}
