<?php
// Calls the real chat service through Envoy's gRPC-Web endpoint with clients/php (no grpc
// extension) and prints what happened as JSON for tests/clients/test_php_client.py.
// env: GRPC_WEB_URL, JWT_SECRET, ALICE_ID, BOB_ID, CAROL_ID, HTTP_CLIENT=curl|stream

declare(strict_types=1);

require __DIR__ . '/../../../clients/php/autoload.php';
require __DIR__ . '/laravel_stubs.php';

use App\Http\Controllers\Api\ChatGroupController;
use App\Services\Chat\ChatClientFactory;
use App\Services\Chat\ChatTokenIssuer;
use App\Services\Chat\CurlHttpClient;
use App\Services\Chat\GrpcException;
use App\Services\Chat\GrpcWebTransport;
use App\Services\Chat\StreamHttpClient;
use App\Services\ChatGrpcClient;
use Illuminate\Http\Request;

$url = getenv('GRPC_WEB_URL') ?: throw new RuntimeException('GRPC_WEB_URL');
$secret = getenv('JWT_SECRET') ?: throw new RuntimeException('JWT_SECRET');
$alice = (int) getenv('ALICE_ID');
$bob = (int) getenv('BOB_ID');
$carol = (int) getenv('CAROL_ID');
$http = getenv('HTTP_CLIENT') === 'stream' ? new StreamHttpClient() : new CurlHttpClient();

$issuer = new ChatTokenIssuer($secret);
$transport = new GrpcWebTransport($url, 10.0, $http);
$out = ['http_client' => $http::class];

// A token minted in PHP, the way tymon/jwt-auth does it.
$aliceToken = $issuer->forUser($alice, ['name' => 'Alice (PHP)']);
$out['alice_token'] = $aliceToken;
$chat = new ChatGrpcClient($transport, fn (): string => $aliceToken);

$group = $chat->createGroup('php room', 'made by PHP', [$bob]);
$out['group'] = $group;
$first = $chat->sendMessage($group['id'], 'hello from PHP', 'php-key-' . $group['id']);
$again = $chat->sendMessage($group['id'], 'hello from PHP', 'php-key-' . $group['id']);
$out['first'] = $first;
$out['again'] = $again;
$chat->sendMessage($group['id'], 'ünïcödé ✓ from PHP');
$out['history'] = $chat->history($group['id'], 10);
$out['my_groups'] = array_column($chat->myGroups(), 'id');
$out['members'] = $chat->members($group['id']);

// Threads, search, pins, mark-unread (issue 16).
$word = 'php' . $group['id'] . 'needle';
$parent = $chat->sendMessage($group['id'], "where is the $word?");
$bobChat = new ChatGrpcClient($transport, fn (): string => $issuer->forUser($bob, ['name' => 'Bob']));
$reply = $bobChat->replyInThread($parent['id'], "the $word is here");
$out['reply'] = $reply;
$out['thread'] = $chat->thread($parent['id']);
$out['thread_unread_group'] = $chat->myGroups();
$out['thread_read'] = $chat->markThreadRead($parent['id']);
$out['search'] = $chat->search($word);
$out['pinned_one'] = $chat->pin($parent['id']);
$out['pinned'] = array_column($chat->pinned($group['id']), 'id');
$chat->pin($parent['id'], false);
$out['pinned_after_unpin'] = $chat->pinned($group['id']);
$out['read'] = $bobChat->markRead($group['id']);
$out['unread'] = $bobChat->markUnread($group['id'], $first['id']);

// Errors arrive as exception classes by gRPC status.
$errors = [];
$try = static function (string $name, callable $call) use (&$errors): void {
    try {
        $call();
        $errors[$name] = 'no error';
    } catch (GrpcException $e) {
        $errors[$name] = ['class' => (new ReflectionClass($e))->getShortName(), 'status' => $e->statusName(), 'http' => $e->httpStatus(), 'details' => $e->details];
    }
};
$try('empty_message', fn () => $chat->sendMessage($group['id'], ''));
$try('not_a_member', fn () => (new ChatGrpcClient($transport, fn () => $issuer->forUser($carol, ['name' => 'Carol'])))->sendMessage($group['id'], 'let me in'));
$try('bad_signature', fn () => (new ChatGrpcClient($transport, fn () => (new ChatTokenIssuer(str_repeat('x', 32)))->forUser($alice)))->myGroups());
$try('pin_as_member', fn () => $bobChat->pin($parent['id']));
$try('search_empty', fn () => $chat->search('   '));
$try('unreachable', fn () => (new ChatGrpcClient(new GrpcWebTransport('http://127.0.0.1:9', 2.0, $http), fn () => $aliceToken, 0))->myGroups());
$out['errors'] = $errors;

// The Laravel controller, acting as the logged-in user (Carol); the request also claims to be
// Alice via user_id/created_by, which the controller never reads.
$controller = new ChatGroupController(new ChatClientFactory($transport, $issuer));
$user = (object) ['id' => $carol, 'name' => 'Carol'];
$created = $controller->store(new Request(['name' => 'controller room', 'member_ids' => [$alice], 'created_by' => $alice, 'user_id' => $alice], $user));
$gid = $created->getData(true)['data']['id'];
$sent = $controller->sendMessage(new Request(['content' => 'via the controller', 'user_id' => $alice], $user, ['idempotency-key' => "ctl-$gid"]), $gid);
$resent = $controller->sendMessage(new Request(['content' => 'via the controller'], $user, ['idempotency-key' => "ctl-$gid"]), $gid);
$listed = $controller->history(new Request(['limit' => 5], $user), $gid);
$denied = $controller->sendMessage(new Request(['content' => 'not mine'], (object) ['id' => $bob, 'name' => 'Bob']), $gid);
$out['controller'] = [
    'created' => [$created->getStatusCode(), $created->getData(true)],
    'sent' => [$sent->getStatusCode(), $sent->getData(true)],
    'resent' => [$resent->getStatusCode(), $resent->getData(true)],
    'history' => [$listed->getStatusCode(), $listed->getData(true)],
    'denied' => [$denied->getStatusCode(), $denied->getData(true)],
];

echo json_encode($out, JSON_THROW_ON_ERROR | JSON_UNESCAPED_UNICODE | JSON_PRETTY_PRINT), "\n";
