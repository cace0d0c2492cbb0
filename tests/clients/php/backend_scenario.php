<?php
// The Laravel backend's side of issue 15 with clients/php: the Eloquent observers (user saved
// -> upsert; team created -> group; user deleted -> erase) and ChatBackendClient, through an
// Envoy listener with `backend_api` on. Prints what happened as JSON for
// tests/clients/test_php_backend_client.py.
// env: GRPC_WEB_URL, JWT_SECRET, BACKEND_JWT_SECRET, OWNER_ID, ANN_ID, BEN_ID; BACKEND_URL
// (default GRPC_WEB_URL): where ChatBackendClient calls, e.g. the chart's internal listener

declare(strict_types=1);

require __DIR__ . '/../../../clients/php/autoload.php';

use App\Observers\ChatTeamObserver;
use App\Observers\ChatUserObserver;
use App\Services\Chat\ChatBackendTokenIssuer;
use App\Services\Chat\ChatTokenIssuer;
use App\Services\Chat\GrpcException;
use App\Services\Chat\GrpcWebTransport;
use App\Services\ChatBackendClient;
use App\Services\ChatGrpcClient;

$url = getenv('GRPC_WEB_URL') ?: throw new RuntimeException('GRPC_WEB_URL');
$backendUrl = getenv('BACKEND_URL') ?: $url;
$userSecret = getenv('JWT_SECRET') ?: throw new RuntimeException('JWT_SECRET');
$backendSecret = getenv('BACKEND_JWT_SECRET') ?: throw new RuntimeException('BACKEND_JWT_SECRET');
$ownerId = (int) getenv('OWNER_ID');
$annId = (int) getenv('ANN_ID');
$benId = (int) getenv('BEN_ID');

$backend = new ChatBackendClient(
    new GrpcWebTransport($backendUrl, 10.0, null, GrpcWebTransport::BACKEND_SERVICE),
    new ChatBackendTokenIssuer($backendSecret),
);
$users = new ChatUserObserver($backend);
$teams = new ChatTeamObserver($backend);
$out = [];

// Eloquent models as plain objects (the observers read attributes only).
$owner = (object) ['id' => $ownerId, 'name' => 'Olivia Owner', 'email' => 'olivia@example.com', 'avatar_url' => 'https://example.com/o.png'];
$ann = (object) ['id' => $annId, 'name' => 'Ann Member', 'email' => 'ann@example.com', 'avatar_url' => null];
$ben = (object) ['id' => $benId, 'name' => 'Ben Member', 'email' => '', 'avatar_url' => null];
foreach ([$owner, $ann, $ben] as $user) {
    $users->saved($user);  // user saved -> UpsertUsers
}
$out['changed_again'] = $backend->upsertUsers([['id' => $annId, 'name' => 'Ann Member', 'email' => 'ann@example.com']]);
$out['changed_custom'] = $backend->upsertUsers([['id' => $annId, 'name' => 'Ann Member', 'email' => 'ann@example.com', 'custom' => ['plan' => 'pro']]]);

$team = (object) ['id' => 7, 'name' => 'Blue team', 'owner_id' => $ownerId, 'member_ids' => [$annId], 'chat_group_id' => null];
$teams->created($team);  // team created -> CreateGroup + a welcome SYSTEM message
$groupId = (int) $team->chat_group_id;
$out['group_id'] = $groupId;
$out['added'] = $backend->addMembers($groupId, [$annId, $benId]);
$team->name = 'Blue team (renamed)';
$teams->updated($team);
$out['posted_as_ann'] = $backend->postMessage($groupId, 'posted by the app for Ann', $annId, 'ann-1');
$out['posted_again'] = $backend->postMessage($groupId, 'posted by the app for Ann', $annId, 'ann-1');
$out['muted'] = $backend->moderateMember($groupId, $benId, 'MUTE', 'cool down', 60);
$out['log'] = $backend->listModeration($groupId);

$errors = [];
$try = static function (string $name, callable $call) use (&$errors): void {
    try {
        $call();
        $errors[$name] = 'no error';
    } catch (GrpcException $e) {
        $errors[$name] = ['class' => (new ReflectionClass($e))->getShortName(), 'status' => $e->statusName(), 'details' => $e->details];
    }
};
$benChat = new ChatGrpcClient(new GrpcWebTransport($url), fn (): string => (new ChatTokenIssuer($userSecret))->forUser($benId, ['name' => 'Ben (token)']));
$try('muted_ben_posts', fn () => $benChat->sendMessage($groupId, 'let me talk'));
$out['banned'] = $backend->banUser($benId, 'fraud');
$try('banned_ben_reads', fn () => $benChat->myGroups());
$backend->unbanUser($benId);
// The users' key never opens the backend API, even on a service-shaped token.
$try('users_key_on_backend', fn () => (new ChatBackendClient(
    new GrpcWebTransport($backendUrl, 10.0, null, GrpcWebTransport::BACKEND_SERVICE),
    new ChatBackendTokenIssuer($userSecret),
))->deleteUser($annId));
$try('too_many_users', fn () => $backend->upsertUsers(array_map(fn (int $i): array => ['id' => $i + 1, 'name' => "u$i"], range(1, 101))));
$out['errors'] = $errors;

$out['export'] = $backend->exportUser($annId);
$users->deleted($ben);  // user deleted -> EraseUser
$out['erased_again'] = $backend->eraseUser($benId);
$ownerChat = new ChatGrpcClient(new GrpcWebTransport($url), fn (): string => (new ChatTokenIssuer($userSecret))->forUser($ownerId));
$out['history'] = $ownerChat->history($groupId, 50)['messages'];
$out['members'] = $ownerChat->members($groupId);
$teams->deleted($team);  // team deleted -> DeleteGroup
$try('history_after_delete', fn () => $ownerChat->history($groupId));
$out['errors'] = $errors;
echo json_encode($out, JSON_THROW_ON_ERROR | JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES), "\n";
