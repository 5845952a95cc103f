package io.tuneline.serving.load;

import ai.djl.nn.Block;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.runtime.StartupEvent;
import io.quarkus.scheduler.Scheduled;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.engine.export.PeftAdapter;
import io.tuneline.engine.method.MethodState;
import io.tuneline.engine.model.CausalLanguageModel;
import io.tuneline.engine.model.SharedBase;
import io.tuneline.engine.model.bert.BertEncoder;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.serving.api.ServingException;
import io.tuneline.serving.classify.ClassifierModel;
import io.tuneline.serving.generate.LanguageModel;
import io.tuneline.serving.registry.RegisteredVersion;
import io.tuneline.serving.registry.RegistryClient;
import jakarta.annotation.PreDestroy;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import org.jboss.logging.Logger;

/**
 * The versions in memory. A request names a model as {@code name}, {@code name:version} or {@code
 * name:alias}; the first request for a version resolves it through the registry, copies its model
 * directory from the store (checksums verified) and loads it, later ones find it here. Names and
 * aliases of a model are resolved again when the registry announces a change to it ({@link
 * RegistryEvents}), and all of them every {@code tuneline.serving.aliases.refresh-interval} in case
 * an announcement was lost: one that moved is served by its new version from then on, and a version
 * no name points at any more is unloaded. Versions of one base whose method leaves the base as it
 * was compute on one copy of it ({@link SharedBases}); the others are loaded whole.
 */
@ApplicationScoped
public class LoadedModels {
    private static final Logger LOG = Logger.getLogger(LoadedModels.class);

    private final RegistryClient registry;
    private final ArtifactStore store;
    private final ServingConfig config;
    private final ServingMetrics metrics;
    private final SharedBases bases;
    private final Map<String, String> baseOf = new ConcurrentHashMap<>();
    private final Map<String, LoadedModel> byId = new ConcurrentHashMap<>();
    private final Map<String, List<Meter>> meters = new ConcurrentHashMap<>();
    private final Map<String, String> resolved = new ConcurrentHashMap<>();

    /** Serialises the poll and the registry's events, so one name is never moved twice at once. */
    private final Object following = new Object();

    private volatile EngineRuntime runtime;
    private volatile boolean preloaded;

    public LoadedModels(
            RegistryClient registry,
            ArtifactStore store,
            ServingConfig config,
            ServingMetrics metrics,
            SharedBases bases,
            MeterRegistry meters) {
        this.bases = bases;
        this.registry = registry;
        this.store = store;
        this.config = config;
        this.metrics = metrics;
        Gauge.builder(ServingMetrics.LOADED_MODELS, byId, Map::size)
                .description("Model versions held in memory")
                .register(meters);
    }

    void preload(@Observes StartupEvent event) {
        for (String name : config.preload().orElse(List.of())) {
            if (!name.isBlank()) {
                LoadedModel m = get(name.trim());
                LOG.infof("preloaded %s (%s)", m.version().id(), m.task());
            }
        }
        preloaded = true;
    }

    /** Whether every version of {@code tuneline.serving.preload} is loaded. */
    public boolean preloaded() {
        return preloaded;
    }

    /** Everything loaded, by {@code name:version}. */
    public List<LoadedModel> loaded() {
        return byId.values().stream().sorted(Comparator.comparing(m -> m.version().id())).toList();
    }

    /**
     * The model {@code requested} names, loaded on first use.
     *
     * @throws ServingException 400 for an empty name, 404 when the registry has no such version,
     *     503 when it cannot be loaded now
     */
    public LoadedModel get(String requested) {
        String name = requested == null ? "" : requested.trim();
        if (name.isEmpty() || name.startsWith(":")) {
            throw ServingException.badRequest(
                    "no model named; give one as name, name:version or name:alias");
        }
        String id = resolved.get(name);
        LoadedModel known = id == null ? null : byId.get(id);
        if (known != null) {
            return known;
        }
        if (name.endsWith(RegisteredVersion.CANDIDATE_SUFFIX)) {
            LoadedModel candidate = byId.get(name);
            if (candidate == null) {
                throw ServingException.unknownModel(
                        "no candidate '"
                                + name
                                + "' is loaded; PUT /v1/candidates/{name} loads one (evaluation's"
                                + " scenario stage does)");
            }
            return candidate;
        }
        Reference ref = Reference.parse(name);
        if (ref.ref().isPresent() && ref.ref().get().isBlank()) {
            throw ServingException.badRequest(
                    "'"
                            + name
                            + "' names no version after the colon; give name:version or name:alias");
        }
        RegisteredVersion version = registry.version(ref.model(), ref.ref());
        LoadedModel loaded = load(version);
        resolved.put(name, version.id());
        return loaded;
    }

    /**
     * Resolves every name and alias served so far again and moves it to the version it names now,
     * then unloads versions nothing served points at any more. The registry's events ({@link
     * RegistryEvents}) make this happen at once for the model they name; this runs every {@code
     * tuneline.serving.aliases.refresh-interval} ({@code off} turns it off) for an event that was
     * lost: sent while this instance was starting, or not sent while the broker was away.
     */
    @Scheduled(
            identity = "follow-aliases",
            every = "${tuneline.serving.aliases.refresh-interval:30s}",
            concurrentExecution = Scheduled.ConcurrentExecution.SKIP)
    public void followAliases() {
        followWhere(name -> true);
    }

    /**
     * Resolves again every name and alias of {@code model} served so far (the registry announced
     * that its versions, stages or aliases changed); returns how many were served.
     */
    public int followModel(String model) {
        return followWhere(name -> Reference.parse(name).model().equals(model));
    }

    /** Resolves again every name served that {@code which} accepts; returns how many. */
    private int followWhere(java.util.function.Predicate<String> which) {
        int followed = 0;
        synchronized (following) {
            for (Map.Entry<String, String> e : Map.copyOf(resolved).entrySet()) {
                if (which.test(e.getKey())) {
                    follow(e.getKey(), e.getValue());
                    followed++;
                }
            }
        }
        return followed;
    }

    private void follow(String name, String was) {
        Reference ref = Reference.parse(name);
        if (ref.fixed()) {
            return;
        }
        RegisteredVersion now;
        try {
            now = registry.version(ref.model(), ref.ref());
        } catch (ServingException e) {
            if (e.status() == 404) {
                // The alias was removed: the next request asks the registry, which answers 404.
                resolved.remove(name, was);
                LOG.infof("%s no longer names a version in the registry", name);
                retireIfUnused(was);
            } else {
                LOG.warnf(
                        "cannot resolve %s again, still serving %s: %s", name, was, e.getMessage());
            }
            return;
        }
        if (now.id().equals(was)) {
            return;
        }
        try {
            load(now);
        } catch (ServingException e) {
            LOG.warnf(
                    "%s now names %s, which cannot be loaded; still serving %s: %s",
                    name, now.id(), was, e.getMessage());
            return;
        }
        resolved.replace(name, was, now.id());
        LOG.infof("%s moved from %s to %s", name, was, now.id());
        retireIfUnused(was);
    }

    /**
     * Unloads {@code id} when no name or alias served resolves to it: new requests are refused with
     * {@link ModelQueue.Retired} (the resources resolve their name again), admitted ones finish
     * first.
     */
    private void retireIfUnused(String id) {
        LoadedModel old;
        synchronized (this) {
            if (resolved.containsValue(id)) {
                return;
            }
            old = byId.remove(id);
            if (old == null) {
                return;
            }
            metrics.remove(meters.remove(id));
        }
        old.queue().retire();
        try {
            old.queue().awaitDrained();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        old.close();
        String base = baseOf.remove(id);
        if (base != null) {
            bases.release(base);
        }
        LOG.infof("unloaded %s: no name or alias served points at it any more", id);
    }

    /**
     * Loads {@code candidate} (a run not registered yet) under {@code NAME:candidate}, replacing a
     * candidate of that name; it stays until {@link #unloadCandidate} and is never resolved through
     * the registry.
     */
    public LoadedModel loadCandidate(RegisteredVersion candidate) {
        if (!candidate.candidate()) {
            throw new IllegalArgumentException(candidate.id() + " is not a candidate");
        }
        unloadCandidate(candidate.model());
        return load(candidate);
    }

    /**
     * Unloads the candidate {@code name} once the requests it admitted are answered; false when
     * none of that name is loaded.
     */
    public boolean unloadCandidate(String name) {
        String id = name + RegisteredVersion.CANDIDATE_SUFFIX;
        if (!byId.containsKey(id)) {
            return false;
        }
        retireIfUnused(id);
        return true;
    }

    /** {@code name}, {@code name:version} or {@code name:alias}. */
    private record Reference(String model, Optional<String> ref) {
        static Reference parse(String name) {
            int colon = name.indexOf(':');
            return colon < 0
                    ? new Reference(name, Optional.empty())
                    : new Reference(
                            name.substring(0, colon), Optional.of(name.substring(colon + 1)));
        }

        /** A version number names the same version for good; a name or alias can move. */
        boolean fixed() {
            return ref.isPresent() && ref.get().matches("\\d{1,18}");
        }
    }

    private synchronized LoadedModel load(RegisteredVersion version) {
        LoadedModel present = byId.get(version.id());
        if (present != null) {
            return present;
        }
        if (byId.size() >= config.limits().maxLoadedModels()) {
            throw new ServingException(
                    503,
                    "Too many models loaded",
                    "this instance holds "
                            + byId.size()
                            + " versions already (tuneline.serving.limits.max-loaded-models); "
                            + version.id()
                            + " is not loaded");
        }
        long start = System.nanoTime();
        Path dir = null;
        try {
            dir = Files.createTempDirectory("serving-" + version.model() + "-");
            fetch(version, dir);
            EngineRuntime engine = runtime();
            LoadedModel model =
                    LanguageModel.isLanguageModel(dir)
                            ? LanguageModel.load(engine, version, dir, config, metrics)
                            : ClassifierModel.load(engine, version, dir, config, metrics);
            if (shareable(version, dir)) {
                model = onSharedBase(engine, version, dir, model);
            }
            byId.put(version.id(), model);
            meters.put(version.id(), metrics.loaded(model));
            LOG.infof(
                    "loaded %s (%s, %s%s) in %d ms",
                    version.id(),
                    model.task(),
                    version.method().isEmpty() ? "method unknown" : version.method(),
                    baseOf.containsKey(version.id())
                            ? ", on the shared base " + version.baseModel()
                            : ", whole",
                    (System.nanoTime() - start) / 1_000_000);
            return model;
        } catch (IOException | RuntimeException e) {
            if (e instanceof ServingException s) {
                throw s;
            }
            LOG.warnf(e, "cannot load %s", version.id());
            throw new ServingException(
                    503,
                    "Model not loadable",
                    "version " + version.id() + " could not be loaded: " + e.getMessage(),
                    e);
        } finally {
            if (dir != null) {
                delete(dir);
            }
        }
    }

    /**
     * Whether {@code version} may compute on a base held once: a method that leaves the base's
     * weights as they were and whose state is stored beside them, the method state of prompt,
     * P-tuning, prefix or bottleneck adapters ({@link MethodState}), or LoRA's PEFT adapter. Full
     * fine-tuning and layer freezing change the base's weights; QLoRA trained on an NF4 base whose
     * rounding its merged weights carry. Those are loaded whole.
     */
    private static boolean shareable(RegisteredVersion version, Path dir) throws IOException {
        return !version.baseModel().isBlank()
                && (MethodState.present(dir)
                        || (version.method().equals("LORA")
                                && PeftAdapter.isLora(dir.resolve(LoadedModel.ADAPTER_DIR))));
    }

    /**
     * {@code whole} rebuilt on its base held once ({@link SharedBases}), when the two are the same
     * model: every tensor of {@code whole} (a merged LoRA weight as base + adapter) within {@link
     * #SHARED_TOLERANCE} of the version on the base ({@link SharedBase#largestDifference}); {@code
     * whole} is closed then. Otherwise (the base cannot be loaded, is of another configuration, or
     * is not the one the version was trained on, e.g. a LoRA trained with the base held in bf16)
     * {@code whole} stays, and the log says why.
     */
    private LoadedModel onSharedBase(
            EngineRuntime engine, RegisteredVersion version, Path dir, LoadedModel whole) {
        String ref = version.baseModel();
        Block base;
        try {
            base = bases.acquire(ref, engine);
        } catch (IOException | RuntimeException e) {
            LOG.infof(
                    "%s is loaded whole: its base %s cannot be loaded (%s)",
                    version.id(), ref, e.getMessage());
            return whole;
        }
        LoadedModel shared = null;
        try {
            shared =
                    whole instanceof LanguageModel
                            ? LanguageModel.loadOnBase(
                                    engine,
                                    version,
                                    dir,
                                    config,
                                    metrics,
                                    (CausalLanguageModel) base)
                            : ClassifierModel.loadOnBase(
                                    engine, version, dir, config, metrics, (BertEncoder) base);
            SharedBase.Difference d =
                    SharedBase.largestDifference(whole.tunable(), shared.tunable());
            if (!(d.value() <= SHARED_TOLERANCE)) {
                throw new IllegalArgumentException(
                        "its weights differ from base + method by "
                                + d.value()
                                + " at "
                                + d.name());
            }
        } catch (IOException | RuntimeException e) {
            if (shared != null) {
                shared.close();
            }
            bases.release(ref);
            LOG.infof(
                    "%s is loaded whole, not on the shared base %s: %s",
                    version.id(), ref, e.getMessage());
            return whole;
        }
        whole.close();
        baseOf.put(version.id(), ref);
        return shared;
    }

    /**
     * How far a version on the shared base may be from its own weights: float32 rounding of the
     * merge ({@code W + (alpha/r) B A} computed in another order), not a different base.
     */
    static final double SHARED_TOLERANCE = 1e-5;

    /** The model directory's own files (not the PEFT export under adapter/), checksums verified. */
    private void fetch(RegisteredVersion version, Path dir) throws IOException {
        int copied = 0;
        for (RegisteredVersion.ModelFile f : version.files()) {
            if (f.path().isBlank() || f.path().startsWith(".")) {
                continue;
            }
            Path target = dir.resolve(f.path());
            if (f.path().contains("/")) {
                // LoRA's PEFT adapter is what its version adds to a shared base; other exports
                // (PEFT prompt learning, the adapters library) are for Python users only.
                String[] parts = f.path().split("/");
                if (parts.length != 2
                        || !parts[0].equals(LoadedModel.ADAPTER_DIR)
                        || !version.method().equals("LORA")
                        || parts[1].isBlank()
                        || parts[1].startsWith(".")) {
                    continue;
                }
                Files.createDirectories(target.getParent());
            }
            ArtifactRef ref =
                    ArtifactRef.newBuilder()
                            .setUri(f.uri())
                            .setSha256(f.sha256())
                            .setSizeBytes(f.sizeBytes())
                            .build();
            try (InputStream in = store.get(ref)) {
                Files.copy(in, target);
            }
            copied++;
        }
        if (copied == 0) {
            throw new ServingException(
                    503,
                    "Model not loadable",
                    "version " + version.id() + " lists no model files in the registry");
        }
    }

    private EngineRuntime runtime() {
        if (runtime == null) {
            runtime = EngineRuntime.start(0);
        }
        return runtime;
    }

    private static void delete(Path dir) {
        try (var files = Files.walk(dir)) {
            files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException e) {
            LOG.debugf("cannot delete %s: %s", dir, e.getMessage());
        }
    }

    @PreDestroy
    void close() {
        byId.values().forEach(LoadedModel::close);
        byId.clear();
        baseOf.clear();
        bases.closeAll();
    }
}
