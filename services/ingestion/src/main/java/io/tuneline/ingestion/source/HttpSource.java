package io.tuneline.ingestion.source;

import io.tuneline.ingestion.config.IngestionConfig;
import io.tuneline.ingestion.validate.DatasetInvalidException;
import java.io.IOException;
import java.io.InputStream;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.URI;
import java.net.UnknownHostException;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.List;
import java.util.Locale;

/**
 * Opens an {@code http(s)://} dataset as a stream, after checking that the host is allowed and that
 * none of its addresses is private, loopback or link-local (unless configured): a job must not be
 * able to make the service fetch from inside the cluster. Redirects are refused rather than
 * followed, since each hop would need the same checks.
 */
public final class HttpSource {
    private final IngestionConfig.Http config;
    private final HttpClient client;

    public HttpSource(IngestionConfig.Http config) {
        this.config = config;
        this.client =
                HttpClient.newBuilder()
                        .connectTimeout(config.timeout())
                        .followRedirects(HttpClient.Redirect.NEVER)
                        .build();
    }

    /** The body of {@code uri}, streaming; the caller closes it. */
    public InputStream open(URI uri) throws IOException {
        String host = uri.getHost();
        if (host == null || host.isBlank()) {
            throw refused("dataset.uri", uri, "it names no host");
        }
        checkHost("dataset.uri", uri, host.toLowerCase(Locale.ROOT));
        HttpResponse<InputStream> response;
        try {
            response =
                    client.send(
                            HttpRequest.newBuilder(uri).timeout(config.timeout()).GET().build(),
                            HttpResponse.BodyHandlers.ofInputStream());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted fetching " + uri, e);
        } catch (IOException e) {
            throw new DatasetInvalidException(
                    "SOURCE_UNREACHABLE",
                    "dataset.uri " + uri + " could not be fetched: " + e,
                    List.of());
        }
        int status = response.statusCode();
        if (status != 200) {
            response.body().close();
            String why =
                    status / 100 == 3
                            ? "it redirects (HTTP "
                                    + status
                                    + " to "
                                    + response.headers().firstValue("location").orElse("?")
                                    + "); use the final URL"
                            : "the server answered HTTP " + status;
            throw new DatasetInvalidException(
                    status == 404 ? "SOURCE_NOT_FOUND" : "SOURCE_UNREACHABLE",
                    "dataset.uri " + uri + " could not be fetched: " + why,
                    List.of());
        }
        return response.body();
    }

    /**
     * Refuses a host outside {@code allowed-hosts} or with a non-public address; {@code what} names
     * the job field in messages. Also used for a dataset's own S3 endpoint.
     */
    void checkHost(String what, URI uri, String host) {
        List<String> allowed = config.allowedHosts().orElse(List.of());
        if (!allowed.isEmpty()
                && allowed.stream()
                        .map(h -> h.toLowerCase(Locale.ROOT))
                        .noneMatch(
                                h ->
                                        h.startsWith(".")
                                                ? host.endsWith(h) || host.equals(h.substring(1))
                                                : host.equals(h))) {
            throw refused(
                    what,
                    uri,
                    "host " + host + " is not in tuneline.ingestion.http.allowed-hosts " + allowed);
        }
        if (config.allowPrivateAddresses()) {
            return;
        }
        InetAddress[] addresses;
        try {
            addresses = InetAddress.getAllByName(host);
        } catch (UnknownHostException e) {
            throw new DatasetInvalidException(
                    "SOURCE_UNREACHABLE",
                    what + " " + uri + ": host " + host + " is unknown",
                    List.of());
        }
        for (InetAddress a : addresses) {
            if (!isPublic(a)) {
                throw refused(
                        what,
                        uri,
                        host
                                + " resolves to the non-public address "
                                + a.getHostAddress()
                                + "; such addresses are refused unless"
                                + " tuneline.ingestion.http.allow-private-addresses is set");
            }
        }
    }

    static boolean isPublic(InetAddress a) {
        if (a.isLoopbackAddress()
                || a.isAnyLocalAddress()
                || a.isLinkLocalAddress()
                || a.isSiteLocalAddress()
                || a.isMulticastAddress()) {
            return false;
        }
        byte[] b = a.getAddress();
        if (a instanceof Inet6Address) {
            // fc00::/7, unique local addresses (RFC 4193): IPv6's private ranges.
            return (b[0] & 0xfe) != 0xfc;
        }
        int first = b[0] & 0xff;
        int second = b[1] & 0xff;
        // 100.64.0.0/10, carrier-grade NAT (RFC 6598), also used inside some clusters.
        return !(first == 100 && second >= 64 && second < 128);
    }

    private static DatasetInvalidException refused(String what, URI uri, String why) {
        return new DatasetInvalidException(
                "SOURCE_REFUSED", what + " " + uri + " is refused: " + why, List.of());
    }
}
